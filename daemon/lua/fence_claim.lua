#!lua
-- fence_claim.lua: a run of a job on a cluster gets its fencing epoch, on
-- the control node where the jobs stream is, while its consumer owns the
-- entry (lua/fence.lua); the run then raises it on every slot
-- (lua/fence_raise.lua) before it writes anything for the job.
-- KEYS: 1 jobs stream, 2 the epoch counter.
-- ARGV: 1 group, 2 entry, 3 consumer.
-- Returns 'lost', or the run's epoch (an integer, greater than any given before).
if not fence(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 'lost' end
return redis.call('INCR', KEYS[2])
