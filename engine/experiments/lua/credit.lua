
local window = tonumber(ARGV[1])
local ops = cjson.decode(ARGV[4])
local entered = {}
for _, op in ipairs(ops) do
  if redis.call('SADD', KEYS[2], op.id) == 1 then
    if op.k == 'x' then
      for _, x in ipairs(op.xs) do
        local raw = redis.call('HGET', KEYS[1], x.e)
        local r
        if raw then
          r = cjson.decode(raw)
        else
          r = {arm = x.a, first = op.ts, last = op.ts, n = 0, p = x.p, c = x.c, pre = op.pre,
               imp = 0, clk = 0, atc = 0, buy = 0, rev = 0, sw = 0}
          entered[#entered + 1] = x.e
        end
        r.n = r.n + 1
        if op.ts > r.last then r.last = op.ts end
        if x.a ~= r.arm then r.sw = r.sw + 1 end
        redis.call('HSET', KEYS[1], x.e, cjson.encode(r))
      end
    else
      local all = redis.call('HGETALL', KEYS[1])
      for i = 1, #all, 2 do
        local e = all[i]
        local r = cjson.decode(all[i + 1])
        local ok = op.ts >= r.first and op.ts <= r.last + window
        if ok and op.slot and e ~= 'global' then
          ok = string.sub(e, -(#op.slot + 1)) == (':' .. op.slot)
        end
        if ok then
          r[op.w] = r[op.w] + 1
          if op.w == 'buy' then r.rev = r.rev + op.rev end
          redis.call('HSET', KEYS[1], e, cjson.encode(r))
        end
      end
    end
  end
end
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
redis.call('EXPIRE', KEYS[2], ARGV[3])
return entered
