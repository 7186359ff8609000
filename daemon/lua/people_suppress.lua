#!lua
-- people_suppress.lua: puts an address on the suppression list (or takes
-- it off); when the list changed and the address has an owner, the
-- owner's rev moves in the same step, so a message looked up before is
-- decided again.
-- KEYS: 1 suppress set, then optionally 2 the owner's person hash.
-- ARGV: 1 "1" add / "0" remove, 2 member "<channel>:<sha256 hex>".
-- Returns 1 when the set changed, 0 when it did not.
local n
if ARGV[1] == '1' then n = redis.call('SADD', KEYS[1], ARGV[2])
else n = redis.call('SREM', KEYS[1], ARGV[2]) end
if n == 1 and KEYS[2] and redis.call('HEXISTS', KEYS[2], 'profile') == 1 then
  redis.call('HINCRBY', KEYS[2], 'rev', 1)
end
return n
