
local person, at, emit, due, reason, maxlen = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4], ARGV[5], ARGV[6]
local n = tonumber(ARGV[7])
local changes = 0
for i = 1, n do
  local key, name = KEYS[3 + i], ARGV[7 + i]
  local inside, score = ARGV[6 + n + 2 * i] == '1', ARGV[7 + n + 2 * i]
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
return changes
