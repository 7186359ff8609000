#!lua
-- people_suppress.lua: puts an address on the suppression list (or takes
-- it off), on the one shard of the keyed indexes its member belongs to
-- (addrindex.h: the suppression set, its info hash and the address index
-- of one member share a hash tag, so this script stays in one slot). The
-- set stays what the hot path reads (one SMISMEMBER per shard a batch
-- touches); why and since when live beside it in the info hash, written
-- only when the address joins the list (a second suppression keeps the
-- first one's time and reason) and dropped when it leaves. The caller then
-- audits the change in the admin stream and moves the owner's rev
-- (lua/people_touch.lua): other slots, other commands.
-- KEYS: 1 suppress shard, 2 suppress info shard, 3 addr shard.
-- ARGV: 1 "1" add / "0" remove, 2 member (16 bytes), 3 info
-- "<since> <by> <reason>" (store_suppress_info_format).
-- Returns {1 when the set changed else 0, the info now stored or false,
-- the person id the address index names or false}.
local n
if ARGV[1] == '1' then
  n = redis.call('SADD', KEYS[1], ARGV[2])
  if n == 1 then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
else
  n = redis.call('SREM', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[2])
end
return {n, redis.call('HGET', KEYS[2], ARGV[2]), redis.call('HGET', KEYS[3], ARGV[2])}
