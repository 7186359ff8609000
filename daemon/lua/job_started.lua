#!lua
-- job_started.lua: a run begins: its entry's state "running", and the
-- campaign's `started` event in herald:events the first time this entry
-- runs (not when it runs again after a stop, a crash, a hold, a takeover or
-- a cancel, when its state already says "running"; not for a resumed or
-- deferred part of a campaign, ARGV[5] "0").
-- KEYS: 1 campaign hash, 2 events stream.
-- ARGV: 1 campaign, 2 entry, 3 at (RFC 3339), 4 events maxlen, 5 "1" when
-- this entry may start the campaign.
-- Returns 1 when the event was written, else 0.
local prev = redis.call('HGET', KEYS[1], 'state:' .. ARGV[2])
redis.call('HSET', KEYS[1], 'state:' .. ARGV[2], 'running')
if prev == 'running' or ARGV[5] ~= '1' then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', 'started', 'campaign', ARGV[1],
           'entry', ARGV[2], 'at', ARGV[3])
return 1
