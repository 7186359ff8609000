#!lua flags=no-writes
-- people_get.lua: what the subject-access document (people_get) needs of
-- one person, in one round trip. Reads only, so it runs under OOM too.
-- KEYS: 1 person hash, 2 consent ledger, 3 history list.
-- ARGV: 1 how many history entries (newest first).
-- Returns nil when no profile is stored, else {HGETALL of the person hash,
-- the whole ledger, the history entries}.
if redis.call('HEXISTS', KEYS[1], 'profile') == 0 then return false end
return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1),
        redis.call('LRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1)}
