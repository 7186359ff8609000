#!lua
-- migrate_ledger.lua: key layout 3 -> 4 for one person (heraldctl
-- migrate). A channel's current consent moves from the field
-- 'consent:<channel>' to '~<channel>'; the consent ledger list
-- herald:r:{ID}:consent becomes the fields '~1', '~2', ... of the person
-- hash, in order, and the last record of each channel that is the
-- channel's current one becomes a reference (the channel's name), so that
-- it is stored once, as lua/people_consent.lua writes it. The list goes in
-- the same step: a migrate cut short moves the rest on its next run, never
-- one twice.
-- KEYS: 1 the layout 3 ledger list, 2 the person hash.
-- ARGV: the channels' names.
-- Returns the number of records moved.
for j = 1, #ARGV do
  local old = 'consent:' .. ARGV[j]
  local cur = redis.call('HGET', KEYS[2], old)
  if cur then
    redis.call('HSET', KEYS[2], '~' .. ARGV[j], cur)
    redis.call('HDEL', KEYS[2], old)
  end
end
local l = redis.call('LRANGE', KEYS[1], 0, -1)
local base = 0
while redis.call('HEXISTS', KEYS[2], '~' .. (base + 1)) == 1 do base = base + 1 end
local ref = {}
for j = 1, #ARGV do
  local cur = redis.call('HGET', KEYS[2], '~' .. ARGV[j])
  for i = #l, 1, -1 do
    if cur and l[i] == cur then
      ref[i] = ARGV[j]
      break
    end
  end
end
for i = 1, #l do redis.call('HSET', KEYS[2], '~' .. (base + i), ref[i] or l[i]) end
redis.call('DEL', KEYS[1])
return #l
