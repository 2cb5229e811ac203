
local B, done = ARGV[1], 0
for n = 3, #ARGV do
  local rec = redis.call('HGET', KEYS[1], ARGV[n])
  if rec and rec ~= 'x' then
    unapply(B, rec)
    redis.call('HSET', KEYS[1], ARGV[n], 'x')
    done = done + 1
  end
end
redis.call('DEL', B .. 'vorders:' .. ARGV[2])
return done
