-- KEYS: the visitors' lists.  ARGV: kept, ttl (s, 0: none), msgpack [[prefix, entry, prefix, entry, ...], ...]
-- per key, oldest first; `prefix` is how the entry's JSON starts ({"id":...,), so an id already listed is skipped;
-- ARGV[4]: one character per key, "1" when some of its entries may be listed already (a redelivery), "0" when
-- every one is new to the engine: then nothing is read.
-- The listed prefixes go in a table once per key: a lookup per new entry, not a pass over the list.
local kept, ttl, checks = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[4]
local batches = cmsgpack.unpack(ARGV[3])
for k, new in ipairs(batches) do
  local key = KEYS[k]
  if string.byte(checks, k) == 48 then  -- "0"
    local entries = {}
    for i = 2, #new, 2 do entries[#entries + 1] = new[i] end
    if #entries > 0 then redis.call('LPUSH', key, unpack(entries)) end  -- in order: the last ends up first
  else
    local listed = {}
    for _, raw in ipairs(redis.call('LRANGE', key, 0, kept - 1)) do
      local cut = string.find(raw, ',"ts"', 1, true)  -- a quote inside a JSON string is escaped: the first is the key's
      if cut then listed[string.sub(raw, 1, cut - 1)] = true end
    end
    for i = 1, #new, 2 do
      if not listed[new[i]] then
        listed[new[i]] = true
        redis.call('LPUSH', key, new[i + 1])
      end
    end
  end
  redis.call('LTRIM', key, 0, kept - 1)
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
return #batches
