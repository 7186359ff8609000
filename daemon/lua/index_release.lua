#!lua
-- index_release.lua: the last step of a write that took an address away
-- from a person (people_write, people_erase, import): the address index
-- entry goes if it still names that person; or, after a write that did not
-- happen (index_claim.lua's entry must not stay), it names again the one it
-- named before.
-- KEYS: 1 addr shard.
-- ARGV: 1 member (16 bytes), 2 person id, 3 the id to restore ("" none).
-- Returns 1 when the entry changed, else 0.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
