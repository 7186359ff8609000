#!lua
-- handed.lua: records, for a batch of reserved messages, that they are
-- being handed to a provider now. After a crash only these are `unknown`;
-- a message still `reserved` never left and is sent by the next run.
-- KEYS: 1 jobs stream, then per message the person's campaigns hash.
-- ARGV: 1 group, 2 entry, 3 consumer (the fence), 4 campaign, then per
-- message: its reserved record, its handed record.
-- Returns 'lost', or per message 1 (handed: send it) or 0 (its record is
-- gone: the person was erased meanwhile; do not send).
if not fence(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 'lost' end
local out = {}
for k = 2, #KEYS do
  local i = 5 + 2 * (k - 2)
  local cur = redis.call('HGET', KEYS[k], ARGV[4])
  if cur == ARGV[i] then
    redis.call('HSET', KEYS[k], ARGV[4], ARGV[i + 1])
    out[k - 1] = 1
  elseif cur == ARGV[i + 1] then
    out[k - 1] = 1 -- our own write, sent again after a lost connection
  else
    out[k - 1] = 0
  end
end
return out
