
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 't', ARGV[1])
return 1
