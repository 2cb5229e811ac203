
local counts = KEYS[1]
local out = {}
for k = 2, #KEYS do
  local at = (k - 2) * 3
  local kind, visitor, ts = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  local d = redis.call('HMGET', KEYS[k], 'variant', 'context', 'visitor', 'shown', 'clicked')
  if d[1] and d[3] == visitor then
    local cells = {'|*|' .. d[1]}
    if d[2] ~= '*' then cells[2] = '|' .. d[2] .. '|' .. d[1] end
    if not d[4] then
      redis.call('HSET', KEYS[k], 'shown', ts)
      for _, cell in ipairs(cells) do redis.call('HINCRBY', counts, 'i' .. cell, 1) end
    end
    if kind == 'c' then
      if not d[5] then
        redis.call('HSET', KEYS[k], 'clicked', ts)
        for _, cell in ipairs(cells) do redis.call('HINCRBY', counts, 'c' .. cell, 1) end
      end
      out[#out + 1] = {k - 1, d[5] or ts}
    end
  end
end
return out
