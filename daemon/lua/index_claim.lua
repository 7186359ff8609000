#!lua
-- index_claim.lua: the first step of a write of a person's address
-- (people_write, import): the address index entry names the person before
-- the person's hash is written, on the one shard of the member (addrindex.h),
-- so a crash in between leaves at worst an entry that readers check
-- against the person and ignore. Says whether the address was erased
-- before (its tombstone is on the same shard).
-- KEYS: 1 addr shard, 2 tombstones shard.
-- ARGV: 1 member (16 bytes), 2 person id.
-- Returns {the id the entry named before or false, 1 when tombstoned else 0}.
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if prev ~= ARGV[2] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return {prev, redis.call('SISMEMBER', KEYS[2], ARGV[1])}
