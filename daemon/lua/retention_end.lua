#!lua
-- retention_end.lua: a sweep that went through every person: each of its
-- campaigns is marked `records` "expired <at>" (a run of its id is refused
-- from now on: it could send twice), leaves the retention set and loses
-- its norecord set; the sweep's keys go.
-- On a cluster (ARGV[3 + campaigns] the key prefix, '' on one Redis) the
-- campaign's per-node keys go too: each run's counters, summed over its
-- nodes by the caller (retention.c), are first added to the campaign hash
-- (the latest run's) or to the run's archived object in the runs hash (an
-- earlier run's, fields "run:<n>:<field>"), so its progress reads the same
-- afterwards; then the names of every per-node key of the campaign (each
-- run's counters and the norecord sets, under each tag its runs' nodes
-- sets name) join the drop set, which the caller empties key by key on
-- their own slots, and the nodes sets go. Only when the campaign's run is
-- still the one the counts were read for; else its per-node keys stay.
-- KEYS: 1 retention zset, 2 lock, 3 cursor, 4 the sweep's campaigns, 5 the
-- drop set, then per campaign: campaign hash, norecord set.
-- ARGV: 1 our lock value, 2 at (RFC 3339), then the campaign ids, then the
-- key prefix ('' one Redis), then per campaign: the run read, the number
-- of fields, then field, value, ...
-- Returns the number of campaigns marked, or 'lost'.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 'lost' end
local ncamps = (#KEYS - 5) / 2
local prefix = ARGV[3 + ncamps]
local at = 4 + ncamps

-- Adds the run's counts (f[i], v[i] from ARGV) to the campaign hash h and
-- its runs hash.
local function fold(h, from, nf)
  local archived = {}
  for i = from, from + 2 * nf - 1, 2 do
    local f, v = ARGV[i], tonumber(ARGV[i + 1])
    local r, name = string.match(f, '^run:(%d+):(.+)$')
    if r then
      archived[r] = archived[r] or {}
      archived[r][name] = (archived[r][name] or 0) + v
    else
      redis.call('HINCRBY', h, f, v)
    end
  end
  for r, counts in pairs(archived) do
    local text = redis.call('HGET', h .. ':runs', r)
    if text then
      local o = cjson.decode(text)
      for name, v in pairs(counts) do o[name] = tostring((tonumber(o[name]) or 0) + v) end
      redis.call('HSET', h .. ':runs', r, cjson.encode(o))
    end
  end
end

local n = 0
for k = 6, #KEYS, 2 do
  local c = ARGV[3 + (k - 6) / 2]
  if prefix ~= '' then
    local run, nf = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
    if run > 0 and tonumber(redis.call('HGET', KEYS[k], 'run')) == run then
      fold(KEYS[k], at + 2, nf)
      for r = 1, run do
        local set = KEYS[k] .. ':nodes:' .. r
        for _, tag in ipairs(redis.call('SMEMBERS', set)) do
          local node = prefix .. ':n:{' .. tag .. '}:campaign:' .. c .. ':'
          redis.call('SADD', KEYS[5], node .. r, node .. 'norecord')
        end
        redis.call('DEL', set)
      end
    end
    at = at + 2 + 2 * nf
  end
  redis.call('HSET', KEYS[k], 'records', 'expired ' .. ARGV[2])
  redis.call('DEL', KEYS[k + 1])
  redis.call('ZREM', KEYS[1], c)
  n = n + 1
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return n
