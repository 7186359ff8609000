#!lua
-- consumer_lock.lua: one live daemon per consumer name. The stream group
-- knows a consumer only by its name, and the fence (fence.lua) trusts the
-- name: two daemons started under one name would both take its pending
-- jobs for their own and send them twice. So a daemon holds its name in
-- herald:consumer:<name> (value "<host> <pid> <run>", with a TTL it renews)
-- and reads no job until it does.
-- KEYS: 1 the lock key.
-- ARGV: 1 action: take | renew | release, 2 our value, 3 TTL (ms),
-- 4 for take: the value of a holder known to be dead ("" none).
-- Returns {'ok'} when the name is ours (taken, renewed or released), or
-- {'held', <the holder's value>} when another daemon holds it.
local cur = redis.call('GET', KEYS[1])
local action, ours = ARGV[1], ARGV[2]
if action == 'release' then
  if cur == ours then redis.call('DEL', KEYS[1]) end
  return {'ok'}
end
if cur and cur ~= ours and not (action == 'take' and ARGV[4] ~= '' and cur == ARGV[4]) then
  return {'held', cur}
end
-- Free, ours, or a dead holder's: (re)set with a fresh TTL. A renew that
-- finds it gone (expired, or Redis came back empty) takes it back.
redis.call('SET', KEYS[1], ours, 'PX', tonumber(ARGV[3]))
return {'ok'}
