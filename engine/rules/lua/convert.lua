
local window = tonumber(ARGV[1])
local converted = 0
for k = 2, #KEYS do
  local at = 1 + (k - 2) * 4
  local visitor, ts, kind, share = ARGV[at + 1], tonumber(ARGV[at + 2]), ARGV[at + 3], ARGV[at + 4]
  local flag = kind == 'v' and 'converted' or 'carted'
  local d = redis.call('HMGET', KEYS[k], 'variant', 'context', 'visitor', 'clicked', flag)
  if d[1] and d[3] == visitor and d[4] and not d[5] then
    local since = ts - tonumber(d[4])
    if since >= 0 and since <= window then
      redis.call('HSET', KEYS[k], flag, ARGV[at + 2])
      local cells = {'|*|' .. d[1]}
      if d[2] ~= '*' then cells[2] = '|' .. d[2] .. '|' .. d[1] end
      for _, cell in ipairs(cells) do
        redis.call('HINCRBY', KEYS[1], kind .. cell, 1)
        if kind == 'v' then redis.call('HINCRBYFLOAT', KEYS[1], 'r' .. cell, share) end
      end
      converted = converted + 1
    end
  end
end
return converted
