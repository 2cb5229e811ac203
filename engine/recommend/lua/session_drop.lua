-- Shared: drop(B, s) removes session s from the pool: its item list, its index entries, its owner.
local function drop(B, s)
  for _, item in ipairs(redis.call('LRANGE', B .. 's:' .. s, 0, -1)) do
    redis.call('ZREM', B .. 'by:' .. item, s)
  end
  redis.call('DEL', B .. 's:' .. s)
  local owner = redis.call('HGET', B .. 'owner', s)
  if owner then redis.call('SREM', B .. 'vsess:' .. owner, s) end
  redis.call('HDEL', B .. 'owner', s)
  redis.call('ZREM', B .. 'recent', s)
  redis.call('ZREM', B .. 'seen', s)
end
