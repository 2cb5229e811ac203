
local B, ops, ttl, cap = ARGV[1], cmsgpack.unpack(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local new = 0
for _, op in ipairs(ops) do
  local counted = true
  if op[1] == 'o' and op[10] == 1 then
    -- the back end confirms an order: the browser's copy of it (same visitor) gives way
    local copy = 'u:' .. op[3] .. ':' .. op[9]
    local rec = redis.call('HGET', KEYS[1], copy)
    if rec and rec ~= 'x' and redis.call('HEXISTS', KEYS[1], op[2]) == 0 then
      unapply(B, rec)
      redis.call('HSET', KEYS[1], copy, 'x')
      redis.call('SREM', B .. 'vorders:' .. op[3], copy)
    end
  elseif op[1] == 'o' and redis.call('HEXISTS', KEYS[1], op[9]) == 1 then
    counted = false  -- a browser's copy of an order the back end has confirmed
  end
  if op[1] == 'o' then
    if counted and redis.call('HSETNX', KEYS[1], op[2], op[4]) == 1 then
      new = new + 1
      redis.call('SADD', B .. 'vorders:' .. op[3], op[2])
      redis.call('HINCRBY', B .. 'totals', 'orders', 1)
      local items, cats, w, era = op[6], op[7], op[5], op[8]
      for i = 1, #items do
        local a = items[i]
        redis.call('HINCRBY', B .. 'np', a, 1)
        redis.call('ZINCRBY', B .. 'pop:' .. era, w, a)
        if cats[i] ~= '' then
          redis.call('ZINCRBY', B .. 'popc:' .. era .. ':' .. cats[i], w, a)
          redis.call('HSET', B .. 'cat', a, cats[i])
        end
        local pk = B .. 'pp:' .. a
        for j = 1, #items do
          if j ~= i then redis.call('HINCRBY', pk, items[j], 1) end
        end
      end
    end
  else
    local vid, sid, item, cat = op[2], op[3], op[4], op[5]
    if cat ~= '' then redis.call('HSET', B .. 'cat', item, cat) end
    local sk = B .. 'sv:' .. vid .. ':' .. sid
    if redis.call('SISMEMBER', sk, item) == 0 then
      local before = redis.call('SMEMBERS', sk)
      if #before < cap then
        new = new + 1
        if #before == 0 then
          redis.call('HINCRBY', B .. 'totals', 'sessions', 1)
          redis.call('SADD', B .. 'vsess:' .. vid, sid)
        end
        for _, other in ipairs(before) do
          redis.call('HINCRBY', B .. 'pv:' .. item, other, 1)
          redis.call('HINCRBY', B .. 'pv:' .. other, item, 1)
        end
        redis.call('HINCRBY', B .. 'nv', item, 1)
        redis.call('SADD', sk, item)
        redis.call('EXPIRE', sk, ttl)
        redis.call('EXPIRE', B .. 'vsess:' .. vid, ttl)
      end
    end
  end
end
return new
