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
-- A reservation of the person that a run has not handed to a provider yet
-- must not be: on one Redis the handoff writes nothing of the person's
-- (lua/finish.lua), so its sequence number joins the run's erased set
-- ("<prefix>:erased:<run>"), which the handoff reads. Each reservation
-- record ("r <entry> <run> <at> <seq>") of the person hash adds one,
-- handed or not (a handed one is never asked about again).
-- KEYS: 1 person hash, 2 history, 3 sends zset.
-- ARGV: 1 rev read, 2 the If-Match condition ("" none, "*", or
-- " <rev> ... "), 3 the erased sets' key up to the run
-- ("<prefix>:erased:"; "" on a cluster, whose handoffs read the person
-- hash), 4 how long an erased set is kept (s).
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
if ARGV[3] ~= '' then
  local h = redis.call('HGETALL', KEYS[1])
  for i = 1, #h, 2 do
    if string.sub(h[i], 1, 2) == 'c:' then
      local run, seq = string.match(h[i + 1], '^r %S+ (%S+) %S+ (%d+)$')
      if run then
        redis.call('SADD', ARGV[3] .. run, seq)
        redis.call('EXPIRE', ARGV[3] .. run, ARGV[4])
      end
    end
  end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 0
