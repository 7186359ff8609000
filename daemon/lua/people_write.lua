#!lua
-- people_write.lua: writes a person's profile (PUT, PATCH) if nobody wrote
-- it since it was read (compare-and-set on rev), bumps rev, and keeps
-- herald:addr in step: the old addresses that changed leave it (if they
-- still name this person), the new ones name this person. Says which new
-- addresses were erased before (their tombstone is in the set).
-- The client's If-Match (precond.h) is checked here, against the rev the
-- write replaces, so no other write can come between the check and this
-- one: a condition needs a stored profile, and unless it is "*" the
-- current rev (absent: 0) must be one it lists.
-- KEYS: 1 person hash, 2 addr hash, 3 tombstones set.
-- ARGV: 1 rev read ("" none), 2 profile JSON, 3 id, 4 "1": the profile
-- must exist (PATCH), 5 the If-Match condition ("" none, "*", or
-- " <rev> <rev> ... "), 6 nold, then nold addr members to drop, then
-- nnew, then per new address: addr member, tombstone member ("" none),
-- channel name, then nsealed, then per sealed field (store_person.h) its
-- name and its envelope, or "" to delete it (absent, or stored in clear).
-- Returns {'precondition'} (If-Match does not hold: nothing written),
-- {'stale'} (read again), {'gone'} (PATCH of no profile) or
-- {'ok', created 0|1, {channel names of the tombstoned addresses}, new rev}.
local cur = redis.call('HGET', KEYS[1], 'rev')
local created = redis.call('HEXISTS', KEYS[1], 'profile') == 0
local cond = ARGV[5]
if cond ~= '' then
  if created then return {'precondition'} end
  if cond ~= '*' and not string.find(cond, ' ' .. (cur or '0') .. ' ', 1, true) then return {'precondition'} end
end
if (cur or '') ~= ARGV[1] then return {'stale'} end
if created and ARGV[4] == '1' then return {'gone'} end
redis.call('HSET', KEYS[1], 'profile', ARGV[2])
local rev = redis.call('HINCRBY', KEYS[1], 'rev', 1)
local i = 6
local nold = tonumber(ARGV[i]); i = i + 1
for k = 1, nold do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[3] then redis.call('HDEL', KEYS[2], ARGV[i]) end
  i = i + 1
end
local nnew = tonumber(ARGV[i]); i = i + 1
local tomb = {}
for k = 1, nnew do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[3])
  if ARGV[i + 1] ~= '' and redis.call('SISMEMBER', KEYS[3], ARGV[i + 1]) == 1 then
    tomb[#tomb + 1] = ARGV[i + 2]
  end
  i = i + 3
end
local nsealed = tonumber(ARGV[i] or '0'); i = i + 1
for k = 1, nsealed do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i])
  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  i = i + 2
end
return {'ok', created and 1 or 0, tomb, rev}
