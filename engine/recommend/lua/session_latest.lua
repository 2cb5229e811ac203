-- Shared by session_head and session_read: the session's items with `latest` (when given) moved to the end,
-- the item the visitor is looking at now (also-bought's seed), viewed or not.
local function with_latest(mine, latest)
  if not latest or latest == '' then return mine end
  local out = {}
  for _, item in ipairs(mine) do
    if item ~= latest then out[#out + 1] = item end
  end
  out[#out + 1] = latest
  return out
end
