#!lua
-- migrate.lua: key layout 1 -> 2 for one person (heraldctl migrate). The
-- once-only records of herald:r:{ID}:campaigns become the fields
-- 'c:<campaign>' of herald:r:{ID}, and the old hash goes. A record the
-- person hash holds already (written under layout 2) is kept. Records are
-- moved even when the person hash is gone, so that once-only still holds
-- if the person is stored again.
-- KEYS: 1 the layout 1 campaigns hash, 2 the person hash.
-- Returns the number of records moved.
local h = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #h, 2 do n = n + redis.call('HSETNX', KEYS[2], 'c:' .. h[i], h[i + 1]) end
redis.call('DEL', KEYS[1])
return n
