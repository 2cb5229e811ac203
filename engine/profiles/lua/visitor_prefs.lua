
if redis.call('HEXISTS', KEYS[1], 't') == 1 then return 0 end
local current = redis.call('HGET', KEYS[1], 'prefs_at')
if current and not later(ARGV[2], current) then return 0 end
redis.call('HSET', KEYS[1], 'prefs', ARGV[1], 'prefs_at', ARGV[2])
return 1
