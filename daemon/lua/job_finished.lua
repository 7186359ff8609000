#!lua
-- job_finished.lua: a run that gave every recipient its outcome: its
-- entry's state, the acknowledgement, and, when that was the campaign's
-- last work (no entry of it running, queued, scheduled or paused, nobody
-- waiting for quiet hours), the campaign's `finished` event with its
-- counts in herald:events (a cancelled campaign's too: its `cancelled`
-- event came first). One script, so a crash never leaves an
-- acknowledged job "running", nor a finished campaign without its event.
-- A finished campaign also joins the retention set (retention.c), scored
-- with the time its once-only records may go (a later run's time wins).
-- On a cluster the counters are read on every node before this script
-- runs, so a run split over several entries (slices) could count one
-- whose last outcomes landed after that read: each entry that finishes
-- adds one to the hash's `dones`, and the caller passes the `dones` it
-- read before its counters. Another entry finished since then (its last
-- outcomes maybe not in the counters passed): the event waits, and the
-- caller reads the counters again (2).
-- Every recipient has its outcome: on one Redis the finishing run's
-- handed log and erased set (store.h) are read no more, and go.
-- KEYS: 1 campaign hash, 2 jobs stream, 3 events stream, 4 retention zset,
-- on one Redis 5 the run's handed log, 6 its erased set.
-- ARGV: 1 group, 2 entry, 3 campaign, 4 at (RFC 3339), 5 events maxlen,
-- 6 the records' end (unix s), 7 the `dones` read before the counters
-- ("" on one Redis: no counters passed), then on a cluster the run's
-- counters summed over its nodes (field, value, ...: store_nodes.h),
-- counted with the hash's own.
-- Returns 1 when the campaign finished (event written), 2 when the
-- counters must be read again and the call sent again, else 0. Sent
-- again after its event (a lost connection), it writes nothing more.
local prev = redis.call('HGET', KEYS[1], 'state:' .. ARGV[2])
redis.call('HSET', KEYS[1], 'state:' .. ARGV[2], 'done')
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
if KEYS[5] then redis.call('DEL', KEYS[5], KEYS[6]) end
local dones = redis.call('HGET', KEYS[1], 'dones') or '0'
if ARGV[7] ~= '' and prev ~= 'done' then redis.call('HINCRBY', KEYS[1], 'dones', 1) end
if redis.call('HEXISTS', KEYS[1], 'finished_at') == 1 then return 0 end
local h = redis.call('HGETALL', KEYS[1])
for i = 8, #ARGV - 1, 2 do
  h[#h + 1], h[#h + 2] = ARGV[i], ARGV[i + 1]
end
local total, sent, unknown, suppressed, failed, deferred = 0, 0, 0, 0, 0, 0
for i = 1, #h, 2 do
  local f, v = h[i], h[i + 1]
  local n = tonumber(v) or 0
  if string.sub(f, 1, 6) == 'state:' then
    if v ~= 'done' then return 0 end
  elseif string.sub(f, 1, 6) == 'total:' then total = total + n
  elseif f == 'sent' then sent = sent + n
  elseif f == 'unknown' then unknown = unknown + n
  elseif string.sub(f, 1, 11) == 'suppressed:' then suppressed = suppressed + n
  elseif string.sub(f, 1, 7) == 'failed:' then failed = failed + n
  elseif string.sub(f, 1, 9) == 'deferred:' then deferred = deferred + n
  end
end
if deferred > 0 then return 0 end
if ARGV[7] ~= '' and dones ~= ARGV[7] then return 2 end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'event', 'finished',
           'campaign', ARGV[3], 'entry', ARGV[2], 'at', ARGV[4], 'total', total, 'sent', sent,
           'suppressed', suppressed, 'failed', failed, 'unknown', unknown)
redis.call('ZADD', KEYS[4], 'GT', ARGV[6], ARGV[3])
-- The run is over: campaign_enqueue.lua may register the next one.
redis.call('HSET', KEYS[1], 'finished_at', ARGV[4])
return 1
