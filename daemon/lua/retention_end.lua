#!lua
-- retention_end.lua: a sweep that went through every person: each of its
-- campaigns is marked `records` "expired <at>" (a run of its id is refused
-- from now on: it could send twice), leaves the retention set and loses
-- its norecord set; the sweep's keys go.
-- KEYS: 1 retention zset, 2 lock, 3 cursor, 4 the sweep's campaigns, then
-- per campaign: campaign hash, norecord set.
-- ARGV: 1 our lock value, 2 at (RFC 3339), then the campaign ids.
-- Returns the number of campaigns marked, or 'lost'.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 'lost' end
local n = 0
for k = 5, #KEYS, 2 do
  local c = ARGV[3 + (k - 5) / 2]
  redis.call('HSET', KEYS[k], 'records', 'expired ' .. ARGV[2])
  redis.call('DEL', KEYS[k + 1])
  redis.call('ZREM', KEYS[1], c)
  n = n + 1
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return n
