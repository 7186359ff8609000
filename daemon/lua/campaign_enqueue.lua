#!lua
-- campaign_enqueue.lua: registers a run of a campaign id, atomically with
-- the check that it may start. Each enqueue of an id is a run (1, 2, ...)
-- counted apart: the campaign hash holds the latest run only (`run`,
-- `enqueued_at`, its `state:<entry>` and counts, `finished_at` once
-- job_finished.lua wrote its `finished` event); registering a new run
-- moves the finished one's fields, as a JSON object, into the runs hash
-- under its number. An id whose run is live (registered and not finished:
-- queued, scheduled, running, paused, waiting for quiet hours) is refused
-- ('live'); a finished one unless the job says "rerun": true
-- ('finished'). A hash written before runs existed (no `run` field) is run
-- 1, live while an entry's state is not done or recipients are deferred.
-- The run's recipient source is kept for GET .../outcomes: the inline ids
-- in the ids list, or the hash's `recipients_key`.
-- Two callers: the HTTP API and heraldctl enqueue (ARGV[2] '': the job is
-- added to the jobs stream here, after the check), and the daemon reading
-- an entry someone XADDed (ARGV[2] its id; 'same' when it is registered
-- already: it came through the API, or is read again after a restart).
-- With an idempotency digest (ARGV[8]), KEYS[6] remembers
-- "<digest> <run> <entry>" for ARGV[9] seconds: the same digest gets the
-- same answer ('replay'), another one 'conflict'.
-- KEYS: 1 campaign hash, 2 runs hash, 3 campaigns index (zset), 4 jobs
-- stream, 5 the run's ids list, 6 idempotency key.
-- ARGV: 1 campaign, 2 entry ('' add the job now), 3 rerun '1'|'0', 4 at
-- (RFC 3339), 5 now (ms, the index's score), 6 job JSON, 7 recipients_key
-- ('' inline), 8 idempotency digest ('' none), 9 its TTL (s), 10 group,
-- 11 the campaign's info ('' none: kept as it is), the field `info` of the
-- campaign hash: its topic and display names, which its people's history
-- entries leave out (job_info_json), 12.. the inline ids.
-- An id whose once-only records went with [retention] (`records` "expired
-- ...", retention.c) is refused for good ('expired'): a run could no
-- longer tell whom it reached.
-- Returns {status, run, entry}: status 'ok' (registered), 'same', 'replay',
-- 'live' or 'finished' (refused: run is the live or last run), 'conflict',
-- 'expired'.
local h = KEYS[1]
if ARGV[8] ~= '' then
  local prev = redis.call('GET', KEYS[6])
  if prev then
    local d, run, entry = string.match(prev, '^(%S+) (%d+) (%S+)$')
    if d == ARGV[8] then return {'replay', tonumber(run), entry} end
    return {'conflict', 0, ''}
  end
end
if ARGV[2] ~= '' and redis.call('HEXISTS', h, 'state:' .. ARGV[2]) == 1 then
  if ARGV[11] ~= '' then redis.call('HSET', h, 'info', ARGV[11]) end
  return {'same', tonumber(redis.call('HGET', h, 'run')) or 1, ARGV[2]}
end
local flat = redis.call('HGETALL', h)
local run = 0
if #flat > 0 then
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  run = tonumber(t.run) or 1
  local live = false
  if t.run then
    live = t.finished_at == nil
  else
    for f, v in pairs(t) do
      if (string.sub(f, 1, 6) == 'state:' and v ~= 'done') or
         (string.sub(f, 1, 9) == 'deferred:' and (tonumber(v) or 0) > 0) then live = true end
    end
  end
  if t.records and string.sub(t.records, 1, 7) == 'expired' then return {'expired', run, ''} end
  if live then return {'live', run, ''} end
  if ARGV[3] ~= '1' then return {'finished', run, ''} end
  redis.call('HSET', KEYS[2], tostring(run), cjson.encode(t))
  redis.call('DEL', h)
else
  run = redis.call('HLEN', KEYS[2])
end
run = run + 1
local entry = ARGV[2]
if entry == '' then
  -- The group reads from the start, so a job added before the daemon's
  -- first start is not skipped (BUSYGROUP when it exists: fine).
  redis.pcall('XGROUP', 'CREATE', KEYS[4], ARGV[10], '0', 'MKSTREAM')
  entry = redis.call('XADD', KEYS[4], '*', 'job', ARGV[6])
end
redis.call('HSET', h, 'run', run, 'enqueued_at', ARGV[4], 'state:' .. entry, 'queued')
if ARGV[11] ~= '' then redis.call('HSET', h, 'info', ARGV[11]) end
if ARGV[7] ~= '' then redis.call('HSET', h, 'recipients_key', ARGV[7]) end
redis.call('DEL', KEYS[5])
for i = 12, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[5], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('ZADD', KEYS[3], 'NX', ARGV[5], ARGV[1])
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[6], ARGV[8] .. ' ' .. run .. ' ' .. entry, 'EX', ARGV[9])
end
return {'ok', run, entry}
