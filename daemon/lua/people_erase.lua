#!lua
-- people_erase.lua: erasure of one person, if nobody wrote it since it
-- was read (compare-and-set on rev): the person hash (profile, consent,
-- rev, the once-only records 'c:<campaign>'), ledger, history and sends go; the person's
-- herald:addr entries go (if they still name this person); a tombstone of
-- each address is added. The person hash goes with its rev: a reservation
-- made on data read before erasure finds rev changed and decides again
-- (unknown_recipient). The suppression list is kept.
-- The client's If-Match (precond.h) is checked here, atomic with the
-- erasure, as people_write.lua checks it.
-- KEYS: 1 person hash, 2 ledger, 3 history, 4 sends zset, 5 addr hash,
-- 6 tombstones set.
-- ARGV: 1 rev read, 2 id, 3 the If-Match condition ("" none, "*", or
-- " <rev> ... "), 4 n, then n addr members, then n tombstone members.
-- Returns -3 (If-Match does not hold: nothing written), -1 (stale: read
-- again), -2 (no profile) or n, the number of tombstones added or kept.
local cur = redis.call('HGET', KEYS[1], 'rev')
local exists = redis.call('HEXISTS', KEYS[1], 'profile') == 1
local cond = ARGV[3]
if cond ~= '' then
  if not exists then return -3 end
  if cond ~= '*' and not string.find(cond, ' ' .. (cur or '0') .. ' ', 1, true) then return -3 end
end
if (cur or '') ~= ARGV[1] then return -1 end
if not exists then return -2 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
local n = tonumber(ARGV[4])
for k = 1, n do
  local m = ARGV[4 + k]
  if redis.call('HGET', KEYS[5], m) == ARGV[2] then redis.call('HDEL', KEYS[5], m) end
end
for k = 1, n do redis.call('SADD', KEYS[6], ARGV[4 + n + k]) end
return n
