#!lua flags=no-writes
-- lookup.lua: what deciding a batch needs, in one round trip.
-- KEYS: per recipient: person hash.
-- ARGV: the person-hash fields to read (store_lookup_field(): 'profile',
-- each channel's consent field in descriptor order, 'rev'), then the
-- campaign's once-only record field ('c:<campaign>').
-- Returns, per recipient, one array of #ARGV values (STORE_LOOKUP_STRIDE):
-- the fields, nil when absent. One HMGET per person and no copying: the
-- replies go back as they are.
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HMGET', KEYS[i], unpack(ARGV)) end
return out
