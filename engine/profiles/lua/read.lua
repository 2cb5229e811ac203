
local out = {}
for k = 1, #KEYS do
  local row = redis.call('HMGET', KEYS[k], 'v', 's', 't')
  local data = false
  if row[1] ~= ARGV[k] then data = redis.call('HGET', KEYS[k], 'd') end
  out[k] = {row[1], data, row[2], row[3]}
end
return out
