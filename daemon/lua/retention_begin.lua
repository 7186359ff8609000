#!lua
-- retention_begin.lua: starts or resumes a sweep of once-only records
-- (retention.c). One daemon sweeps at a time (the lock); a sweep that
-- stopped part way (a crash, a lost connection) is resumed from its saved
-- cursor with the campaigns it began with. A campaign with a run still
-- live (a state other than done: rerun, paused, scheduled) is left for a
-- later sweep.
-- KEYS: 1 retention zset, 2 lock, 3 cursor, 4 the sweep's campaigns (set).
-- ARGV: 1 now (unix s), 2 our lock value, 3 lock TTL (ms), 4 at most this
-- many campaigns, 5 the campaign hash key's prefix ("<prefix>:campaign:").
-- Returns {'busy'} (another daemon sweeps), {'none'} (nothing due), or
-- {'sweep', cursor, campaign, ...}.
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[2] then return {'busy'} end
local camps = redis.call('SMEMBERS', KEYS[4])
if #camps == 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
  for _, c in ipairs(due) do
    local live = false
    local h = redis.call('HGETALL', ARGV[5] .. c)
    for i = 1, #h, 2 do
      if string.sub(h[i], 1, 6) == 'state:' and h[i + 1] ~= 'done' then live = true end
    end
    if not live then camps[#camps + 1] = c end
  end
  if #camps == 0 then
    if holder then redis.call('DEL', KEYS[2]) end
    return {'none'}
  end
  redis.call('SADD', KEYS[4], unpack(camps))
  redis.call('SET', KEYS[3], '0')
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', tonumber(ARGV[3]))
local out = {'sweep', redis.call('GET', KEYS[3]) or '0'}
for _, c in ipairs(camps) do out[#out + 1] = c end
return out
