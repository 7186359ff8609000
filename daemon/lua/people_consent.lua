#!lua
-- people_consent.lua: appends a consent record to a person's append-only
-- ledger, makes it the channel's current consent and bumps rev. With an
-- event key (a provider's event that may be delivered again, e.g. Twilio's
-- MessageSid) it is applied at most once: the key is set, and the event
-- counted, in the same step as the change, so a key is never left set by
-- a change that did not happen (and a redelivery after a refusal applies).
-- The ledger is in the person hash (layout 4): fields '~1', '~2', ... in
-- the order written. A channel's current record is stored once, in its
-- field '~<channel>'; its ledger field holds the channel's name instead (a
-- reference, never a record: it has no '|'), and gets the record back when
-- a newer one takes its place (people_get.lua reads it so).
-- KEYS: 1 person hash, then optionally 2 event key, 3 counts hash (on a
-- cluster the count is sent apart: no 3rd key).
-- ARGV: 1 record (consent_record_format), 2 the channel's field
-- ('~<channel>'), 3 the channel's name, 4 "1" bump rev and 'act' ("0": the
-- import, which bumps them itself), then with an event key: 5 its expiry
-- (s), 6 the counts field.
-- Returns 0 (no profile: nothing written), 1 (appended) or 2 (the event
-- was applied before: nothing written).
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
if redis.call('HEXISTS', KEYS[1], 'profile') == 0 then return 0 end
local n = 1
while redis.call('HEXISTS', KEYS[1], '~' .. n) == 1 do n = n + 1 end
local prev = redis.call('HGET', KEYS[1], ARGV[2])
if prev then
  for i = n - 1, 1, -1 do
    if redis.call('HGET', KEYS[1], '~' .. i) == ARGV[3] then
      redis.call('HSET', KEYS[1], '~' .. i, prev)
      break
    end
  end
end
redis.call('HSET', KEYS[1], '~' .. n, ARGV[3], ARGV[2], ARGV[1])
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'act', redis.call('TIME')[1])
  redis.call('HINCRBY', KEYS[1], 'rev', 1)
end
if KEYS[2] then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[5])
  if KEYS[3] then redis.call('HINCRBY', KEYS[3], ARGV[6], 1) end
end
return 1
