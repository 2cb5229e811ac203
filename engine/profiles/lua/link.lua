
if redis.call('EXISTS', KEYS[3]) == 1 then return 'erased' end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 'linked' end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[5]) then
  redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[4])
  return 'capped'
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
return 'linked'
