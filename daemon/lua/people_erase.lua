#!lua
-- people_erase.lua: erasure of one person, if nobody wrote it since it
-- was read (compare-and-set on rev): the person hash (profile, consent,
-- rev, the once-only records 'c:<campaign>', the ledger), history and sends
-- go. The person hash goes with its rev: a reservation made on data read
-- before erasure finds rev changed and decides again (unknown_recipient).
-- The keyed indexes are in other slots: people.c adds the tombstones
-- before this script (so a crash never loses one) and releases the
-- address index entries after it (lua/index_release.lua). The
-- suppression list is kept.
-- The client's If-Match (precond.h) is checked here, atomic with the
-- erasure, as people_write.lua checks it.
-- KEYS: 1 person hash, 2 history, 3 sends zset.
-- ARGV: 1 rev read, 2 the If-Match condition ("" none, "*", or
-- " <rev> ... ").
-- Returns -3 (If-Match does not hold: nothing written), -1 (stale: read
-- again), -2 (no profile) or 0 (erased).
local cur = redis.call('HGET', KEYS[1], 'rev')
local exists = redis.call('HEXISTS', KEYS[1], 'profile') == 1
local cond = ARGV[2]
if cond ~= '' then
  if not exists then return -3 end
  if cond ~= '*' and not string.find(cond, ' ' .. (cur or '0') .. ' ', 1, true) then return -3 end
end
if (cur or '') ~= ARGV[1] then return -1 end
if not exists then return -2 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 0
