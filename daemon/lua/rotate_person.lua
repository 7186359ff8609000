#!lua
-- rotate_person.lua: writes one person's contact data sealed again under
-- the key that now comes first ([privacy] key_file), if nobody wrote the
-- person since heraldctl rotate-key read it (compare-and-set on rev and
-- the stored profile): a write through the API, an import or a page in
-- between is never overwritten; the rotation reads that person again.
-- The plaintext is the same, so rev is not bumped: a message the daemon
-- decided from the old ciphertext is still right.
-- KEYS: 1 person hash.
-- ARGV: 1 rev read ("" none), 2 profile read, 3 new profile, 4 n, then n
-- pairs: field, value ("" deletes the field).
-- Returns 1 (written) or 0 (changed meanwhile, or gone: nothing written).
local p = redis.call('HGET', KEYS[1], 'profile')
if not p or p ~= ARGV[2] or (redis.call('HGET', KEYS[1], 'rev') or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'profile', ARGV[3])
local i = 5
for k = 1, tonumber(ARGV[4]) do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i])
  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  i = i + 2
end
return 1
