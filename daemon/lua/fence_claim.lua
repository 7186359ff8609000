#!lua
-- fence_claim.lua: a run of a job on a cluster gets its fencing epoch, on
-- the control node where the jobs stream is, while its consumer owns the
-- entry (lua/fence.lua); the run then raises it on every slot
-- (lua/fence_raise.lua) before it writes anything for the job. It also
-- names the nodes whose per-node keys the run is about to write, so that
-- readers find them without a SCAN: each tag joins the campaign run's
-- nodes set (its counters) and the audit's (its audit streams).
-- KEYS: 1 jobs stream, 2 the epoch counter, 3 campaign hash, 4 audit
-- nodes set. ARGV: 1 group, 2 entry, 3 consumer, 4 the campaign's nodes
-- set without its run (the run is the campaign hash's), 5.. node tags.
-- Returns 'lost', or {epoch (greater than any given before), run}.
if not fence(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 'lost' end
local epoch = redis.call('INCR', KEYS[2])
local run = tonumber(redis.call('HGET', KEYS[3], 'run')) or 1
for i = 5, #ARGV do
  redis.call('SADD', ARGV[4] .. run, ARGV[i])
  redis.call('SADD', KEYS[4], ARGV[i])
end
return {epoch, run}
