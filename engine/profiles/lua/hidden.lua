-- KEYS: profiles. Returns the positions (1-based) of those an erasure request has hidden ('e').
local out = {}
for k = 1, #KEYS do
  if redis.call('HEXISTS', KEYS[k], 'e') == 1 then out[#out + 1] = k end
end
return out
