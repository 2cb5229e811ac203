-- KEYS[1]: B recent.  ARGV: B, item, sample.
-- Returns {n, {other item, count, ...}}: the item's `sample` newest indexed sessions and how many of them
-- hold each item (the item itself included).
local B, sample = ARGV[1], tonumber(ARGV[3])
local holding = redis.call('ZREVRANGE', B .. 'by:' .. ARGV[2], 0, sample - 1)
local counts, order = {}, {}
for _, s in ipairs(holding) do
  for _, item in ipairs(redis.call('LRANGE', B .. 's:' .. s, 0, -1)) do
    if not counts[item] then counts[item] = 0; order[#order + 1] = item end
    counts[item] = counts[item] + 1
  end
end
local flat = {}
for _, item in ipairs(order) do flat[#flat + 1] = item; flat[#flat + 1] = counts[item] end
return {#holding, flat}
