#!lua
-- job_cut_publish.lua: the control plane's half of a step of cutting a
-- recipients_key job (lua/job_cut.lua closes the slices on the source's
-- slot). Each slice closed and not yet published becomes an entry of the
-- jobs stream (field `job`: the job with recipients_key naming the slice's
-- list; `held_from` "<entry>|s": its records name the job's entry), with
-- the campaign's state "queued" until a daemon starts it; how many are
-- published is kept (`pub`), so a step sent again, or the entry's next
-- owner after a crash between the two halves, publishes each slice once.
-- When the cut is done: the job's total (the ids kept), its state "done"
-- and its acknowledgement, and the count dropped. The last slice is
-- published in that same script, so the last slice to finish sees every
-- state done (job_finished.lua writes the campaign's `finished` event).
-- Under the fence: only the entry's owner publishes.
-- KEYS: 1 jobs stream, 2 campaign hash, 3 the published count's hash (one
-- Redis: the cut hash itself).
-- ARGV: 1 group, 2 entry, 3 consumer (the fence), 4 slices closed, 5
-- 'done' or 'more', 6 ids kept, 7 held_from of the slices, 8 the slices'
-- key prefix, 9 the job text before the slice's key, 10 the text after it.
-- Returns 'lost' when the run no longer owns its entry, else {'more' or
-- 'done', slices published, ids kept}.
if not fence(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 'lost' end
local pub, k, kept = tonumber(redis.call('HGET', KEYS[3], 'pub')) or 0, tonumber(ARGV[4]), tonumber(ARGV[6])
for i = pub, k - 1 do
  local id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[9] .. ARGV[8] .. i .. ARGV[10], 'held_from', ARGV[7])
  redis.call('HSET', KEYS[2], 'state:' .. id, 'queued')
end
if k > pub then redis.call('HSET', KEYS[3], 'pub', k) end
if ARGV[5] ~= 'done' then return {'more', math.max(k, pub), kept} end
redis.call('HSET', KEYS[2], 'total:' .. ARGV[2], kept, 'state:' .. ARGV[2], 'done')
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('DEL', KEYS[3])
return {'done', math.max(k, pub), kept}
