
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local current = redis.call('GET', KEYS[2])
if current and not later(ARGV[2], current) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return 1
