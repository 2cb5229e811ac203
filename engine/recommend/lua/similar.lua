
local flat, ids, pair, paired = redis.call('HGETALL', KEYS[1]), {}, {}, {}
local support, method, limit, m = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
if ARGV[9] ~= '' then  -- the prior strength chosen from the shop's orders (engine.recommend.prior_job), if stored
  m = tonumber(redis.call('HGET', ARGV[9], 'm') or ARGV[8])
end
for i = 1, #flat, 2 do
  local c = tonumber(flat[i + 1])
  if c >= support and c > 0 and flat[i] ~= ARGV[4] then
    ids[#ids + 1] = flat[i]
    pair[#pair + 1] = c
    paired[flat[i]] = true
  end
end
local npairs = #ids
if method == 'shrunk' and m > 0 then
  for i = 10, #ARGV do
    if not paired[ARGV[i]] and ARGV[i] ~= ARGV[4] then
      paired[ARGV[i]] = true
      ids[#ids + 1] = ARGV[i]
      pair[#pair + 1] = 0
    end
  end
end
local na = tonumber(redis.call('HGET', ARGV[1], ARGV[4]) or '0')
local total = tonumber(redis.call('HGET', ARGV[2], ARGV[3]) or '0')
local scored = {}
for start = 1, #ids, 1000 do
  local part = redis.call('HMGET', ARGV[1], unpack(ids, start, math.min(start + 999, #ids)))
  for j = 1, #part do
    local n = start + j - 1
    local p, nb = pair[n], tonumber(part[j] or '0')
    local s
    if method == 'confidence' then s = p / math.max(na, p)
    elseif method == 'cosine' then s = p / math.sqrt(math.max(na, p) * math.max(nb, p))
    elseif method == 'jaccard' then s = p / math.max(na + nb - p, p)
    elseif method == 'lift' then s = p * math.max(total, 1) / (math.max(na, p) * math.max(nb, p))
    elseif method == 'shrunk' then s = (p + m * nb / math.max(total, 1)) / (math.max(na, p) + m)
    else s = p end
    if s > 0 then scored[#scored + 1] = {ids[n], s, p, nb} end
  end
end
table.sort(scored, function(a, b) if a[2] ~= b[2] then return a[2] > b[2] end return a[1] < b[1] end)
local out = {}
for i = 1, math.min(limit, #scored) do
  out[#out + 1] = scored[i][1]
  out[#out + 1] = string.format('%.17g', scored[i][2])
  out[#out + 1] = scored[i][3]
  out[#out + 1] = scored[i][4]
end
return out
