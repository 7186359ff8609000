#!lua flags=no-writes
-- people_get.lua: what the subject-access document (people_get) needs of
-- one person, in one round trip. Reads only, so it runs under OOM too.
-- The ledger is read in order from the person hash ('~1', '~2', ...; a
-- field holding a channel's name stands for that channel's current record,
-- '~<channel>': people_consent.lua).
-- KEYS: 1 person hash, 2 history list (written before the ring of fields
-- 'h<slot>' in the person hash; store_history_read).
-- ARGV: 1 how many of the list's entries (newest first).
-- Returns nil when no profile is stored, else {HGETALL of the person hash
-- (with the history's ring), the whole ledger, the list's entries}.
if redis.call('HEXISTS', KEYS[1], 'profile') == 0 then return false end
local h = redis.call('HGETALL', KEYS[1])
local f = {}
for i = 1, #h, 2 do f[h[i]] = h[i + 1] end
local ledger = {}
local n = 1
while f['~' .. n] do
  local v = f['~' .. n]
  if not string.find(v, '|', 1, true) and string.sub(v, 1, 1) ~= '{' then v = f['~' .. v] end
  if v then ledger[#ledger + 1] = v end
  n = n + 1
end
return {h, ledger, redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)}
