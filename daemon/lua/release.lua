#!lua flags=allow-cross-slot-keys
-- release.lua: gives back a reservation that no provider took (the daemon
-- is stopping), so that the next run sends the message.
-- KEYS: 1 jobs stream, 2 person hash (the record is its field
-- 'c:<campaign>'), 3 sends zset.
-- ARGV: 1 group, 2 entry, 3 consumer (the fence), 4 campaign, 5 our
-- reserved record, 6 the same record once handed, 7 sends member.
-- Returns 'lost' when the run no longer owns its entry, else 'ok'.
if not fence(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 'lost' end
local rf = 'c:' .. ARGV[4]
local cur = redis.call('HGET', KEYS[2], rf)
if cur and (cur == ARGV[5] or cur == ARGV[6]) then redis.call('HDEL', KEYS[2], rf) end
redis.call('ZREM', KEYS[3], ARGV[7])
return 'ok'
