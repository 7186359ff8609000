#!lua
-- retention_step.lua: a sweep's progress: its SCAN cursor saved and its
-- lock renewed, while the lock is still this daemon's.
-- KEYS: 1 lock, 2 cursor.
-- ARGV: 1 our lock value, 2 lock TTL (ms), 3 the cursor.
-- Returns 'ok', or 'lost' (another daemon sweeps now: stop).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'lost' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
redis.call('SET', KEYS[2], ARGV[3])
return 'ok'
