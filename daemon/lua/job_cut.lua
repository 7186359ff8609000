#!lua
-- job_cut.lua: one step of cutting a recipients_key job into slices that
-- any daemon claims, on the slot of the source key (on a cluster the cut's
-- keys carry a tag of that slot). Each step reads the next `step` ids of
-- the source from where the last step stopped (SSCAN's cursor for a set, a
-- rank or an index for a zset or a list), keeps those not met before (the
-- `seen` set: SSCAN may return an id twice, a list may hold one twice),
-- and appends them to the slice being filled, a list of its own; a slice
-- of `size` ids is closed when the next id comes (`k`, the slices closed,
-- is also the number of the one being filled). Where the cut stands
-- (position, slices closed, ids in the one being filled, ids kept) is
-- saved in the cut hash in the same script, so a daemon that dies between
-- steps leaves a cut its entry's next owner resumes: each id lands in
-- exactly one slice. The last step closes the last slice, marks the cut
-- `done` (kept a day: a step sent again, or by a run that lost its entry,
-- then writes nothing) and drops the seen set. Making each closed slice a
-- job of the stream is the next step's (lua/job_cut_publish.lua, on the
-- control plane's slot): a crash between the two leaves closed slices the
-- next owner's publish step still finds.
-- KEYS: 1 recipients_key, 2 cut hash, 3 seen set, 4 (one Redis only) the
-- jobs stream.
-- ARGV: 1 group ('' on a cluster: no fence here; the publish step has it),
-- 2 entry, 3 consumer, 4 kind (set, zset, list), 5 size, 6 step, 7 the
-- slices' key prefix (slice k's list is <prefix><k>).
-- Returns 'lost' when the run no longer owns its entry, else {'more' or
-- 'done', slices closed, ids kept}.
if ARGV[1] ~= '' and not fence(KEYS[4], ARGV[1], ARGV[2], ARGV[3]) then return 'lost' end
local st = redis.call('HMGET', KEYS[2], 'pos', 'k', 'n', 'kept', 'v', 'done')
local pos, k, n, kept = st[1] or '0', tonumber(st[2]) or 0, tonumber(st[3]) or 0, tonumber(st[4]) or 0
if st[6] then return {'done', k, kept} end
-- A cut begun by a herald before this two-step form made each slice a job
-- as it closed it: those are published (one Redis: the same hash).
if st[2] and not st[5] then redis.call('HSET', KEYS[2], 'pub', k) end
local size, step = tonumber(ARGV[5]), tonumber(ARGV[6])
local ids, done
if ARGV[4] == 'set' then
  local r = redis.call('SSCAN', KEYS[1], pos, 'COUNT', step)
  pos, ids, done = r[1], r[2], r[1] == '0'
else
  local from = tonumber(pos)
  if ARGV[4] == 'zset' then ids = redis.call('ZRANGE', KEYS[1], from, from + step - 1)
  else ids = redis.call('LRANGE', KEYS[1], from, from + step - 1) end
  pos, done = tostring(from + #ids), #ids < step
end
for _, id in ipairs(ids) do
  if redis.call('SADD', KEYS[3], id) == 1 then
    if n >= size then k, n = k + 1, 0 end
    redis.call('RPUSH', ARGV[7] .. k, id)
    n, kept = n + 1, kept + 1
  end
end
if not done then
  redis.call('HSET', KEYS[2], 'pos', pos, 'k', k, 'n', n, 'kept', kept, 'v', 2)
  return {'more', k, kept}
end
if n > 0 then k = k + 1 end
redis.call('HSET', KEYS[2], 'pos', pos, 'k', k, 'n', 0, 'kept', kept, 'v', 2, 'done', 1)
redis.call('PEXPIRE', KEYS[2], 86400000)
redis.call('DEL', KEYS[3])
return {'done', k, kept}
