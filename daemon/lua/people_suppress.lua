#!lua
-- people_suppress.lua: puts an address on the suppression list (or takes
-- it off); when the list changed and the address has an owner, the
-- owner's rev moves in the same step, so a message looked up before is
-- decided again. The set stays what the hot path reads (one SMISMEMBER per
-- batch); why and since when live beside it in the info hash, written only
-- when the address joins the list (a second suppression keeps the first
-- one's time and reason) and dropped when it leaves. Each change is
-- audited in the admin stream (action, channel, address_sha256, by,
-- reason, at): never the address itself.
-- KEYS: 1 suppress set, 2 suppress info hash, 3 admin stream, then
-- optionally 4 the owner's person hash.
-- ARGV: 1 "1" add / "0" remove, 2 member "<channel>:<sha256 hex>", 3 info
-- "<since> <by> <reason>" (store_suppress_info_format), 4 by, 5 reason,
-- 6 at (RFC 3339), 7 admin stream maxlen.
-- Returns {1 when the set changed else 0, the info now stored or false}.
local n
if ARGV[1] == '1' then
  n = redis.call('SADD', KEYS[1], ARGV[2])
  if n == 1 then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
else
  n = redis.call('SREM', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[2])
end
if n == 1 then
  if KEYS[4] and redis.call('HEXISTS', KEYS[4], 'profile') == 1 then
    redis.call('HINCRBY', KEYS[4], 'rev', 1)
  end
  local colon = string.find(ARGV[2], ':', 1, true)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*',
             'action', ARGV[1] == '1' and 'suppress' or 'unsuppress',
             'channel', string.sub(ARGV[2], 1, colon - 1), 'address_sha256', string.sub(ARGV[2], colon + 1),
             'by', ARGV[4], 'reason', ARGV[5], 'at', ARGV[6])
end
return {n, redis.call('HGET', KEYS[2], ARGV[2])}
