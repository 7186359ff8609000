#!lua
-- people_consent.lua: appends a consent record to a person's append-only
-- ledger, makes it the channel's current consent and bumps rev. With an
-- event key (a provider's event that may be delivered again, e.g. Twilio's
-- MessageSid) it is applied at most once: the key is set, and the event
-- counted, in the same step as the change, so a key is never left set by
-- a change that did not happen (and a redelivery after a refusal applies).
-- KEYS: 1 person hash, 2 ledger list, then optionally 3 event key,
-- 4 counts hash (on a cluster the count is sent apart: no 4th key).
-- ARGV: 1 record JSON, 2 field consent:<channel>, then with an event key:
-- 3 its expiry (s), 4 the counts field.
-- Returns 0 (no profile: nothing written), 1 (appended) or 2 (the event
-- was applied before: nothing written).
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then return 2 end
if redis.call('HEXISTS', KEYS[1], 'profile') == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[1], 'act', redis.call('TIME')[1])
redis.call('HINCRBY', KEYS[1], 'rev', 1)
if KEYS[3] then
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[3])
  if KEYS[4] then redis.call('HINCRBY', KEYS[4], ARGV[4], 1) end
end
return 1
