#!lua
-- keys_retire.lua: retires key id ARGV[1] in the key registry (keyreg.h),
-- unless a live sealing lease (keylease.h) names it: a daemon or a
-- heraldctl command seals under it now. heraldctl retire-key counted
-- nobody sealed under it before; this is its last step, atomic with the
-- leases (lua/keys_lease.lua refuses a retired id).
-- KEYS: 1 the key registry, 2 the sealing leases.
-- ARGV: 1 key id, 2 the registry's new value ("retired <unix s>"; ""
-- to write nothing: heraldctl retire-key --dry-run).
-- Returns {'ok'}, {'unknown'} (no such id: nothing written), {'retired',
-- value} (retired already) or {'sealing', holder, seconds left} (a live
-- lease names it: nothing written).
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return {'unknown'} end
if string.sub(v, 1, 7) == 'retired' then return {'retired', v} end
local now = tonumber(redis.call('TIME')[1])
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local id, till = string.match(all[i + 1], '^(%S+) (%d+)$')
  if id == ARGV[1] and tonumber(till) > now then return {'sealing', all[i], tonumber(till) - now} end
end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return {'ok'}
