
local B, vid, done = ARGV[1], ARGV[2], 0
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local sk = B .. 'sv:' .. vid .. ':' .. sid
  local items = redis.call('SMEMBERS', sk)
  if #items > 0 then
    for i = 1, #items do
      decr(B .. 'nv', items[i])
      for j = 1, #items do
        if j ~= i then decr(B .. 'pv:' .. items[i], items[j]) end
      end
    end
    decr(B .. 'totals', 'sessions')
    done = done + 1
  end
  redis.call('DEL', sk)
end
redis.call('DEL', KEYS[1])
return done
