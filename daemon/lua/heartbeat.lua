#!lua
-- heartbeat.lua: keeps a running job's entry ours, and says when it is not.
-- KEYS: 1 jobs stream. ARGV: 1 group, 2 entry, 3 consumer.
-- Returns 'ok' (its idle time is reset), 'lost' (another consumer owns it
-- now: the run must stop without writing) or 'gone' (no longer pending).
-- Unlike XCLAIM with min-idle 0, it never takes an entry back.
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(p) == 'table' and p.err then
  if string.sub(p.err, 1, 7) == 'NOGROUP' then return 'gone' end
  return p
end
if p[1] == nil then return 'gone' end
if p[1][2] ~= ARGV[3] then return 'lost' end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return 'ok'
