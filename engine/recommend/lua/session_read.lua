-- KEYS[1]: B recent.  ARGV: B, session key, sample, how many of the session's latest items are looked up,
-- threshold T (engine.recommend.session_rule), the latest item ('' for none: the session's own last, see
-- session_latest.lua).
-- n: the indexed sessions other than this one holding the session's last item (at most `sample`).
-- n >= T: returns {the session's items, n, {item, count, ...}}: the last item's pair counts in them.
-- n < T: returns {the session's items, n, {s, items}, ...}: those sessions, then the most recent other
-- sessions holding one of the looked-up items, newest first, up to `sample` in all (the candidates of
-- engine.recommend.sknn).
local B, own, sample, threshold = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
local mine = redis.call('LRANGE', B .. 's:' .. own, 0, -1)
if #mine == 0 then return {mine, 0} end
mine = with_latest(mine, ARGV[6])
local holding = {}
for _, s in ipairs(redis.call('ZREVRANGE', B .. 'by:' .. mine[#mine], 0, sample)) do
  if s ~= own and #holding < sample then holding[#holding + 1] = s end
end
if #holding >= threshold then
  return {mine, #holding, pair_counts(B, holding)}
end
local out = {mine, #holding}
local found, ids = {[own] = true}, {}
for _, s in ipairs(holding) do
  found[s] = true
  out[#out + 1] = {s, redis.call('LRANGE', B .. 's:' .. s, 0, -1)}
end
local recency = {}
for k = math.max(1, #mine - tonumber(ARGV[4]) + 1), #mine - 1 do
  local held = redis.call('ZREVRANGE', B .. 'by:' .. mine[k], 0, sample - 1, 'WITHSCORES')
  for j = 1, #held, 2 do
    local s = held[j]
    if not found[s] then
      found[s] = true
      recency[s] = tonumber(redis.call('ZSCORE', B .. 'recent', s) or held[j + 1])
      ids[#ids + 1] = s
    end
  end
end
table.sort(ids, function(a, b) return recency[a] > recency[b] end)
for j = 1, math.min(#ids, sample - (#out - 2)) do
  out[#out + 1] = {ids[j], redis.call('LRANGE', B .. 's:' .. ids[j], 0, -1)}
end
return out
