#!lua
-- job_slice.lua: cuts a job into slices that any daemon claims. Each slice
-- becomes an entry of the jobs stream of its own (field `job`, and
-- `held_from` "<entry>|s": its records name the job's entry, and its total
-- is counted here), with the campaign's state "queued" until a daemon
-- starts it; then the job's total, its state "done" and its
-- acknowledgement. One script, under the fence: a job is sliced once, and
-- a crash before it leaves the job pending, to be sliced by whoever runs it
-- next.
-- KEYS: 1 jobs stream, 2 campaign hash.
-- ARGV: 1 group, 2 entry, 3 consumer (the fence), 4 total, 5 held_from of
-- the slices, 6.. the slices' job texts.
-- Returns 'lost' when the run no longer owns its entry, else 'ok'.
if not fence(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 'lost' end
for i = 6, #ARGV do
  local id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[i], 'held_from', ARGV[5])
  redis.call('HSET', KEYS[2], 'state:' .. id, 'queued')
end
redis.call('HSET', KEYS[2], 'total:' .. ARGV[2], ARGV[4], 'state:' .. ARGV[2], 'done')
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 'ok'
