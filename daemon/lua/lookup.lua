#!lua flags=no-writes
-- lookup.lua: what deciding a batch needs, in one round trip.
-- KEYS: per recipient: person hash, campaigns hash. ARGV: 1 campaign.
-- Returns, per recipient, 5 values: profile, consent:email, consent:sms,
-- rev (nil when absent) and the campaign's once-only record (or nil).
local out, o = {}, 0
for i = 1, #KEYS, 2 do
  local h = redis.call('HMGET', KEYS[i], 'profile', 'consent:email', 'consent:sms', 'rev')
  out[o + 1], out[o + 2], out[o + 3], out[o + 4] = h[1], h[2], h[3], h[4]
  out[o + 5] = redis.call('HGET', KEYS[i + 1], ARGV[1])
  o = o + 5
end
return out
