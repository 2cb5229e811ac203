-- KEYS[1]: B recent.  ARGV: B, pool size, sessions kept per item, items per session, retention (ms, 0: none),
-- msgpack [[visitor, session key, item, ts], ...] in log order.  Returns how many views were new.
local B, size, per_item, max_items = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local retention, added, latest = tonumber(ARGV[5]), 0, nil
for _, v in ipairs(cmsgpack.unpack(ARGV[6])) do
  local vid, s, item, ts = v[1], v[2], v[3], tonumber(v[4])
  if not latest or ts > latest then latest = ts end
  local last_seen = tonumber(redis.call('ZSCORE', B .. 'seen', s) or '-1')
  if ts > last_seen then redis.call('ZADD', B .. 'seen', ts, s) end
  local list = B .. 's:' .. s
  local items = redis.call('LRANGE', list, 0, -1)
  local seen = #items >= max_items
  for _, i in ipairs(items) do
    if i == item then seen = true break end
  end
  if not seen then
    redis.call('RPUSH', list, item)
    -- scored by the view's own time, not by a count of views: a replay, which leaves out what was
    -- erased, then writes the same scores
    redis.call('ZADD', B .. 'recent', 'GT', ts, s)
    redis.call('ZADD', B .. 'by:' .. item, ts, s)
    redis.call('ZREMRANGEBYRANK', B .. 'by:' .. item, 0, -per_item - 1)
    redis.call('SADD', B .. 'vsess:' .. vid, s)
    redis.call('HSET', B .. 'owner', s, vid)
    added = added + 1
  end
end
if retention > 0 and latest then  -- sessions last seen longer ago than the retention leave the pool
  for _, s in ipairs(redis.call('ZRANGEBYSCORE', B .. 'seen', '-inf', '(' .. (latest - retention))) do drop(B, s) end
end
local n = redis.call('ZCARD', B .. 'recent')
if n > size then
  for _, s in ipairs(redis.call('ZRANGE', B .. 'recent', 0, n - size - 1)) do drop(B, s) end
end
return added
