-- KEYS[1]: B recent.  ARGV: B, visitor ids...  Returns how many sessions were removed.
local B, removed = ARGV[1], 0
for k = 2, #ARGV do
  for _, s in ipairs(redis.call('SMEMBERS', B .. 'vsess:' .. ARGV[k])) do
    drop(B, s)
    removed = removed + 1
  end
  redis.call('DEL', B .. 'vsess:' .. ARGV[k])
end
return removed
