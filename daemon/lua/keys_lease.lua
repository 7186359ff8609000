#!lua
-- keys_lease.lua: takes or renews a sealing lease (keylease.h): the holder
-- (a daemon's run, or a heraldctl command) seals under key id ARGV[2] now.
-- In one step with the check that the id is not retired, so that
-- lua/keys_retire.lua, which retires an id only when no live lease names
-- it, and a lease never cross: either the lease is refused, or the
-- retirement is. Leases that lapsed (their time is past) go on the way.
-- KEYS: 1 the key registry, 2 the sealing leases.
-- ARGV: 1 holder, 2 key id, 3 the lease's length (s).
-- Returns 'ok', or 'retired' (nothing written).
local v = redis.call('HGET', KEYS[1], ARGV[2])
if v and string.sub(v, 1, 7) == 'retired' then return 'retired' end
local now = tonumber(redis.call('TIME')[1])
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local till = tonumber(string.match(all[i + 1], ' (%d+)$') or '0')
  if till <= now and all[i] ~= ARGV[1] then redis.call('HDEL', KEYS[2], all[i]) end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. (now + tonumber(ARGV[3])))
return 'ok'
