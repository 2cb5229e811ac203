-- KEYS[1]: B recent.  ARGV: B, session key, sample, how many of the session's latest items are looked up.
-- Returns {the session's items, {s, items}, ...}: the `sample` most recent other sessions
-- holding one of the looked-up items (the candidates of engine.recommend.sknn), newest first.
local B, own, sample = ARGV[1], ARGV[2], tonumber(ARGV[3])
local mine = redis.call('LRANGE', B .. 's:' .. own, 0, -1)
local lookup = {}
for k = math.max(1, #mine - tonumber(ARGV[4]) + 1), #mine do lookup[#lookup + 1] = mine[k] end
local found, ids = {}, {}
for _, item in ipairs(lookup) do
  local held = redis.call('ZREVRANGE', B .. 'by:' .. item, 0, sample - 1, 'WITHSCORES')
  for j = 1, #held, 2 do
    local s = held[j]
    if s ~= own and not found[s] then
      found[s] = tonumber(redis.call('ZSCORE', B .. 'recent', s) or held[j + 1])
      ids[#ids + 1] = s
    end
  end
end
table.sort(ids, function(a, b) return found[a] > found[b] end)
local out = {mine}
for j = 1, math.min(#ids, sample) do
  out[#out + 1] = {ids[j], redis.call('LRANGE', B .. 's:' .. ids[j], 0, -1)}
end
return out
