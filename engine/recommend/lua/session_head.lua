-- KEYS[1]: B recent.  ARGV: B, session key.
-- Returns {the session's items, 1 when the index of its last item holds it (else 0)}.
local B, own = ARGV[1], ARGV[2]
local mine = redis.call('LRANGE', B .. 's:' .. own, 0, -1)
if #mine == 0 then return {mine, 0} end
return {mine, redis.call('ZSCORE', B .. 'by:' .. mine[#mine], own) and 1 or 0}
