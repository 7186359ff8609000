#!lua
-- job_cut.lua: one step of cutting a recipients_key job into slices that
-- any daemon claims. Each step reads the next `step` ids of the source
-- from where the last step stopped (SSCAN's cursor for a set, a rank or an
-- index for a zset or a list), keeps those not met before (the `seen`
-- set: SSCAN may return an id twice, a list may hold one twice), and
-- appends them to the slice being filled, a list of its own; a slice of
-- `size` ids becomes an entry of the jobs stream (field `job`: the job with
-- recipients_key naming that list; `held_from` "<entry>|s": its records
-- name the job's entry), with the campaign's state "queued" until a daemon
-- starts it. Where the cut stands (position, slices made, ids in the one
-- being filled, ids kept) is saved in the cut hash in the same script, so
-- a daemon that dies between steps leaves a cut its entry's next owner
-- resumes: each id lands in exactly one slice. The last step cuts the
-- last slice, writes the job's total (the ids kept), its state "done" and
-- its acknowledgement, and drops the cut hash and the seen set. Under the
-- fence: only the entry's owner cuts.
-- KEYS: 1 jobs stream, 2 campaign hash, 3 recipients_key, 4 cut hash,
-- 5 seen set.
-- ARGV: 1 group, 2 entry, 3 consumer (the fence), 4 kind (set, zset,
-- list), 5 size, 6 step, 7 held_from of the slices, 8 the slices' key
-- prefix (slice k's list is <prefix><k>), 9 the job text before the slice's
-- key, 10 the text after it.
-- Returns 'lost' when the run no longer owns its entry, else {'more' or
-- 'done', slices made, ids kept}.
if not fence(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 'lost' end
local st = redis.call('HMGET', KEYS[4], 'pos', 'k', 'n', 'kept')
local pos, k, n, kept = st[1] or '0', tonumber(st[2]) or 0, tonumber(st[3]) or 0, tonumber(st[4]) or 0
local size, step = tonumber(ARGV[5]), tonumber(ARGV[6])
local ids, done
if ARGV[4] == 'set' then
  local r = redis.call('SSCAN', KEYS[3], pos, 'COUNT', step)
  pos, ids, done = r[1], r[2], r[1] == '0'
else
  local from = tonumber(pos)
  if ARGV[4] == 'zset' then ids = redis.call('ZRANGE', KEYS[3], from, from + step - 1)
  else ids = redis.call('LRANGE', KEYS[3], from, from + step - 1) end
  pos, done = tostring(from + #ids), #ids < step
end
local function cut()
  local key = ARGV[8] .. k
  local id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[9] .. key .. ARGV[10], 'held_from', ARGV[7])
  redis.call('HSET', KEYS[2], 'state:' .. id, 'queued')
  k, n = k + 1, 0
end
-- A full slice is cut when the next id comes, never at the end of a
-- step: so the last step always cuts the last slice, in the script that
-- sets the job "done", and the last slice to finish sees every state done
-- (job_finished.lua writes the campaign's `finished` event).
for _, id in ipairs(ids) do
  if redis.call('SADD', KEYS[5], id) == 1 then
    if n >= size then cut() end
    redis.call('RPUSH', ARGV[8] .. k, id)
    n, kept = n + 1, kept + 1
  end
end
if not done then
  redis.call('HSET', KEYS[4], 'pos', pos, 'k', k, 'n', n, 'kept', kept)
  return {'more', k, kept}
end
if n > 0 then cut() end
redis.call('HSET', KEYS[2], 'total:' .. ARGV[2], kept, 'state:' .. ARGV[2], 'done')
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('DEL', KEYS[4], KEYS[5])
return {'done', k, kept}
