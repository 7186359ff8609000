#!lua
-- events_claim.lua: before another attempt at an event, whether it is
-- still this consumer's (pending to it: not acknowledged, not taken over)
-- and, if so, its idle time restarted, so that no other daemon takes over
-- an event a live daemon is retrying. One script: nothing can take it
-- between the check and the claim.
-- KEYS: 1 events stream.
-- ARGV: 1 group, 2 consumer, 3 the event's entry id.
-- Returns 1 (ours, claimed again) or 0 (no longer ours: drop it).
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #p == 0 then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
