-- Subtracts one count, deleting fields that reach zero (no ghosts of erased people).
local function decr(key, field)
  if redis.call('HINCRBY', key, field, -1) <= 0 then redis.call('HDEL', key, field) end
end
local function unweigh(key, w, item)
  local left = tonumber(redis.call('ZINCRBY', key, '-' .. w, item))
  if left <= tonumber(w) * 1e-9 then redis.call('ZREM', key, item) end
end
