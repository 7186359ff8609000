#!lua
-- people_write.lua: writes a person's profile (PUT, PATCH) if nobody wrote
-- it since it was read (compare-and-set on rev), bumps rev and the last
-- activity time ('act', unix s on Redis's clock: [retention]
-- inactive_people). The address
-- index is not here (its shards are in other slots): people.c claims the
-- new addresses before (lua/index_claim.lua) and releases the old ones
-- after (lua/index_release.lua); readers check what the index says
-- against this hash.
-- The client's If-Match (precond.h) is checked here, against the rev the
-- write replaces, so no other write can come between the check and this
-- one: a condition needs a stored profile, and unless it is "*" the
-- current rev (absent: 0) must be one it lists.
-- KEYS: 1 person hash.
-- ARGV: 1 rev read ("" none), 2 profile JSON, 3 "1": the profile must
-- exist (PATCH), 4 the If-Match condition ("" none, "*", or
-- " <rev> <rev> ... "), 5 nsealed, then per sealed field (store_person.h)
-- its name and its envelope, or "" to delete it (absent, or stored in
-- clear).
-- Returns {'precondition'} (If-Match does not hold: nothing written),
-- {'stale'} (read again), {'gone'} (PATCH of no profile) or
-- {'ok', created 0|1, new rev}.
local cur = redis.call('HGET', KEYS[1], 'rev')
local created = redis.call('HEXISTS', KEYS[1], 'profile') == 0
local cond = ARGV[4]
if cond ~= '' then
  if created then return {'precondition'} end
  if cond ~= '*' and not string.find(cond, ' ' .. (cur or '0') .. ' ', 1, true) then return {'precondition'} end
end
if (cur or '') ~= ARGV[1] then return {'stale'} end
if created and ARGV[3] == '1' then return {'gone'} end
redis.call('HSET', KEYS[1], 'profile', ARGV[2], 'act', redis.call('TIME')[1])
local rev = redis.call('HINCRBY', KEYS[1], 'rev', 1)
local i = 6
for k = 1, tonumber(ARGV[5] or '0') do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i])
  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  i = i + 2
end
return {'ok', created and 1 or 0, rev}
