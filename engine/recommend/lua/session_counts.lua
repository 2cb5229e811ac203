-- KEYS[1]: B recent.  ARGV: B, item, sample.
-- Returns {n, {other item, count, ...}}: the item's `sample` newest indexed sessions and how many of them
-- hold each item (the item itself included).
local B, sample = ARGV[1], tonumber(ARGV[3])
local holding = redis.call('ZREVRANGE', B .. 'by:' .. ARGV[2], 0, sample - 1)
return {#holding, pair_counts(B, holding)}
