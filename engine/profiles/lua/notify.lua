-- A person's segments told to destinations without a change of membership: on erasure
-- (they leave every set) or on withdrawn marketing consent (they stay, only the gate says
-- they had consent). ZREM's and SREM's answers make each notice happen once, however many
-- callers (the API and the worker) get here.
-- KEYS: due, outbox, stats, marketing (the set of people with marketing consent), seg:<name>...
-- ARGV: person, at, reason, maxlen, emit (1/0), marketing (1/0), mode (erase|withdraw), name per seg key
local person, at, reason, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local emit, marketing, mode = ARGV[5] == '1', ARGV[6], ARGV[7]
if mode == 'withdraw' and redis.call('SREM', KEYS[4], person) == 0 then
  return 0  -- not known to have consented, or told already
end
local changes = 0
for i = 5, #KEYS do
  local was = redis.call('ZSCORE', KEYS[i], person)
  local told = was
  if was and mode == 'erase' then told = redis.call('ZREM', KEYS[i], person) == 1 and was end
  if told and emit then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'segment', ARGV[3 + i], 'person', person,
               'change', 'exited', 'at', at, 'score', was, 'reason', reason, 'marketing', marketing)
    redis.call('HINCRBY', KEYS[3], 'exited', 1)
    changes = changes + 1
  end
end
if mode == 'erase' then
  redis.call('ZREM', KEYS[1], person)
  redis.call('SREM', KEYS[4], person)
end
return changes
