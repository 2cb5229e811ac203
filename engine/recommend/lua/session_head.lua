-- KEYS[1]: B recent.  ARGV: B, session key, the latest item ('' for none: the session's own last).
-- Returns {the session's items (the latest item last), 1 when the index of its last item holds it (else 0)}.
local B, own = ARGV[1], ARGV[2]
local mine = redis.call('LRANGE', B .. 's:' .. own, 0, -1)
if #mine == 0 then return {mine, 0} end
mine = with_latest(mine, ARGV[3])
return {mine, redis.call('ZSCORE', B .. 'by:' .. mine[#mine], own) and 1 or 0}
