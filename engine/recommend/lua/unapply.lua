-- Subtracts one order's record (msgpack [visitor, ts, weight, items, categories, era]).
local function unapply(B, rec)
  local r = cmsgpack.unpack(rec)
  local w, items, cats, era = r[3], r[4], r[5], r[6]
  for i = 1, #items do
    local a = items[i]
    decr(B .. 'np', a)
    unweigh(B .. 'pop:' .. era, w, a)
    if cats[i] ~= '' then unweigh(B .. 'popc:' .. era .. ':' .. cats[i], w, a) end
    for j = 1, #items do
      if j ~= i then decr(B .. 'pp:' .. a, items[j]) end
    end
  end
  decr(B .. 'totals', 'orders')
end
