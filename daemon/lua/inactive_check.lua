#!lua
-- inactive_check.lua: is this person to be erased by [retention]
-- inactive_people (inactive.c)? Yes when a profile is stored, no channel's
-- current consent is granted, the last activity ('act', unix s: written by
-- every change of the person, people_write.lua, people_consent.lua, import)
-- is older than the limit, and so is the last message sent (the newest
-- 'sent' entry of the history: the ring of fields 'h<slot>' of the person
-- hash, and a history list written before the ring). A person without 'act' (stored before it
-- existed) gets it now: their time starts today. Redis's clock: the same
-- for every daemon.
-- KEYS: 1 person hash, 2 history list (written before the ring).
-- ARGV: 1 the limit (s), then the consent fields ('~<channel>').
-- Returns the person's rev (the erasure is conditional on it: a change
-- after this check keeps the person), or false.
local now = tonumber(redis.call('TIME')[1])
local f = redis.call('HMGET', KEYS[1], 'profile', 'rev', 'act', unpack(ARGV, 2))
if not f[1] then return false end
for i = 4, #f do
  -- granted: the compact record "1|<channel>|1|..." (consent_record_format), or JSON as before it
  if f[i] and (string.match(f[i], '^1|[^|]*|1|') or string.find(f[i], '"granted":true', 1, true)) then
    return false
  end
end
local act = tonumber(f[3])
if not act then
  redis.call('HSET', KEYS[1], 'act', now)
  return false
end
local since = now - tonumber(ARGV[1])
if act > since then return false end
local function sent_since(e)
  -- "2|<at>|<campaign>|<channel digit or -><outcome code><reason code>|<provider>"
  -- (store_history_format: 's' sent), or "1|<at>|...|<outcome>|..." as
  -- entries were written before the codes.
  local at, code = string.match(e, '^2|(%d+)|[^|]*|[%d-](%a)')
  if code then return code == 's' and tonumber(at) > since end
  local at1, outcome = string.match(e, '^1|(%d+)|[^|]*|[^|]*|[^|]*|([^|]*)|')
  return outcome == 'sent' and tonumber(at1) > since
end
local all = redis.call('HGETALL', KEYS[1])
for j = 1, #all, 2 do
  if string.match(all[j], '^h%d+$') and sent_since(all[j + 1]) then return false end
end
for _, e in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  if sent_since(e) then return false end
end
return f[2] or '0'
