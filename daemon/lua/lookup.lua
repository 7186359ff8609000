#!lua flags=no-writes
-- lookup.lua: what deciding a batch needs, in one round trip.
-- KEYS: per recipient: person hash, campaigns hash.
-- ARGV: 1 campaign, then the person-hash fields to read (store_lookup_field():
-- 'profile', each channel's consent field in descriptor order, 'rev').
-- Returns, per recipient, #ARGV values (STORE_LOOKUP_STRIDE, 3 + channels):
-- the fields (nil when absent), then the campaign's once-only record (or nil).
local fields, nf = {}, #ARGV - 1
for j = 1, nf do fields[j] = ARGV[j + 1] end
local out, o = {}, 0
for i = 1, #KEYS, 2 do
  local h = redis.call('HMGET', KEYS[i], unpack(fields))
  for j = 1, nf do out[o + j] = h[j] end
  out[o + nf + 1] = redis.call('HGET', KEYS[i + 1], ARGV[1])
  o = o + nf + 1
end
return out
