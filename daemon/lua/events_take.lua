#!lua
-- events_take.lua: the next campaign event this daemon POSTs to [events]
-- url (events.c), from the consumer group ARGV[1] on herald:events: our
-- own pending one first (read before a restart, never acknowledged), then
-- (ARGV[4] '1') one another consumer left idle for ARGV[3] ms (a dead
-- daemon's), then a new one. The group is created at '$' when missing:
-- events written before it are not POSTed. A pending entry the stream
-- lost (trimmed) is acknowledged here: there is nothing to send.
-- KEYS: 1 events stream.
-- ARGV: 1 group, 2 consumer, 3 claim idle (ms), 4 '1' to look for idle
-- entries of others.
-- Returns {how, id, {field, value, ...}, pending, lag}: how 'own',
-- 'taken', 'new' or 'none' (id '' and no fields); pending and lag of the
-- group (-1 when Redis does not know the lag).
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '$', 'MKSTREAM')
local function first(list)
  for _, e in ipairs(list or {}) do
    if e[2] then return e end
    redis.call('XACK', KEYS[1], ARGV[1], e[1])
  end
  return nil
end
local how, e = 'own', nil
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', '16', 'STREAMS', KEYS[1], '0')
if r then e = first(r[1][2]) end
if not e and ARGV[4] == '1' then
  how = 'taken'
  e = first(redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', '1')[2])
end
if not e then
  how = 'new'
  r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', '1', 'STREAMS', KEYS[1], '>')
  if r then e = first(r[1][2]) end
end
local pending, lag = -1, -1
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local t = {}
  for i = 1, #g, 2 do t[g[i]] = g[i + 1] end
  if t.name == ARGV[1] then
    pending = t.pending or -1
    if t.lag then lag = t.lag end
  end
end
if not e then return {'none', '', {}, pending, lag} end
return {how, e[1], e[2], pending, lag}
