#!lua flags=no-writes
-- people_get.lua: what the subject-access document (people_get) needs of
-- one person, in one round trip. Reads only, so it runs under OOM too.
-- KEYS: 1 person hash, 2 consent ledger, 3 history list (written before
-- the ring of fields 'h<slot>' in the person hash; store_history_read).
-- ARGV: 1 how many of the list's entries (newest first).
-- Returns nil when no profile is stored, else {HGETALL of the person hash
-- (with the history's ring), the whole ledger, the list's entries}.
if redis.call('HEXISTS', KEYS[1], 'profile') == 0 then return false end
return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1),
        redis.call('LRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1)}
