-- Shared by the session scripts: how many of `sessions` hold each item, as {item, count, ...} in first-seen order.
local function pair_counts(B, sessions)
  local counts, order = {}, {}
  for _, s in ipairs(sessions) do
    for _, item in ipairs(redis.call('LRANGE', B .. 's:' .. s, 0, -1)) do
      if not counts[item] then counts[item] = 0; order[#order + 1] = item end
      counts[item] = counts[item] + 1
    end
  end
  local flat = {}
  for _, item in ipairs(order) do flat[#flat + 1] = item; flat[#flat + 1] = counts[item] end
  return flat
end
