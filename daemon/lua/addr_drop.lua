#!lua
-- addr_drop.lua: on a cluster, the address index entries a person's write
-- left behind (addresses the person no longer has) leave the index, each
-- only if it still names that person: another person who took the address
-- meanwhile keeps it. (On a single instance people_write.lua does this
-- inside its own step.)
-- KEYS: 1 addr hash.
-- ARGV: 1 person id, 2.. addr members.
-- Returns the number of entries removed.
local n = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then
    n = n + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return n
