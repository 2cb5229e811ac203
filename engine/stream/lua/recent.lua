-- KEYS: the visitors' lists.  ARGV: kept, ttl (s, 0: none), msgpack [[prefix, entry, prefix, entry, ...], ...]
-- per key, oldest first; `prefix` is how the entry's JSON starts ({"id":...,), so an id already listed is skipped.
local kept, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local batches = cmsgpack.unpack(ARGV[3])
for k, new in ipairs(batches) do
  local key = KEYS[k]
  local listed = redis.call('LRANGE', key, 0, kept - 1)
  for i = 1, #new, 2 do
    local prefix, seen = new[i], false
    for _, raw in ipairs(listed) do
      if string.sub(raw, 1, #prefix) == prefix then seen = true break end
    end
    if not seen then redis.call('LPUSH', key, new[i + 1]) end
  end
  redis.call('LTRIM', key, 0, kept - 1)
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
return #batches
