local at, emit, reason, maxlen = ARGV[1], ARGV[2] == '1', ARGV[3], ARGV[4]
local m = cmsgpack.unpack(ARGV[5])
local names, people = m[1], m[2]
local changes = 0
for _, p in ipairs(people) do
  local person, due, flags, scores = p[1], p[2], p[3], p[4]
  for i = 1, #names do
    local key, name = KEYS[3 + i], names[i]
    local inside, score = string.sub(flags, i, i) == '1', scores[i]
    local was = redis.call('ZSCORE', key, person)
    local change = nil
    if inside then
      redis.call('ZADD', key, score, person)
      if not was then change = 'entered' end
    elseif was then
      redis.call('ZREM', key, person)
      change, score = 'exited', was
    end
    if change and emit then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'segment', name, 'person', person,
                 'change', change, 'at', at, 'score', score, 'reason', reason)
      redis.call('HINCRBY', KEYS[3], change, 1)
      changes = changes + 1
    end
  end
  if due == '' then redis.call('ZREM', KEYS[1], person)
  elseif due ~= 'keep' then redis.call('ZADD', KEYS[1], due, person) end
end
return changes
