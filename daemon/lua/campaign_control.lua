#!lua
-- campaign_control.lua: an operator's pause, resume or cancel of a
-- campaign (heraldctl, POST /v1/campaigns/{id}/...). The campaign hash's
-- `control` field says `paused` or `cancelled` (absent: running); every
-- daemon reads it within a second (queue.c) and at the start of each run.
-- A run that meets `paused` gives back what it had not handed to a
-- provider and parks its job in the campaign's paused hash (entry ->
-- "<held_from>\n<job>"); resume and cancel put those jobs back into the
-- stream (fields `job` and `held_from`, as scheduled jobs come back), so
-- that a run resumes them, or gives each unsent recipient
-- suppressed/cancelled. A cancel also brings back at once the campaign's
-- jobs parked for later (its deferred recipients, a not_before), so that
-- nothing waits hours to learn it is cancelled. A cancel is final.
-- Each change (not an `unchanged`) is an event in herald:events: paused,
-- resumed or cancelled, with the campaign and the time.
-- KEYS: 1 campaign hash, 2 paused hash, 3 jobs stream, 4 scheduled zset,
-- 5 events stream.
-- ARGV: 1 action: pause | resume | cancel, 2 the campaign id, 3 at (RFC
-- 3339), 4 events maxlen.
-- Returns 'ok', 'unchanged' (already so), 'unknown' (no such campaign),
-- 'cancelled' (pause or resume of a cancelled campaign) or 'not_paused'
-- (resume of a running one).
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
local cur = redis.call('HGET', KEYS[1], 'control')
local function requeue()
  local parked = redis.call('HGETALL', KEYS[2])
  for i = 1, #parked, 2 do
    local v = parked[i + 1]
    local nl = string.find(v, '\n', 1, true)
    if nl then
      redis.call('XADD', KEYS[3], '*', 'job', string.sub(v, nl + 1), 'held_from', string.sub(v, 1, nl - 1))
    end
    -- The parked entry's state goes with it: its new entry says where it is.
    redis.call('HDEL', KEYS[1], 'state:' .. parked[i])
  end
  redis.call('DEL', KEYS[2])
end
local function event(name)
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', 'event', name, 'campaign', ARGV[2], 'entry', '',
             'at', ARGV[3])
end
local action = ARGV[1]
if action == 'pause' then
  if cur == 'cancelled' then return 'cancelled' end
  if cur == 'paused' then return 'unchanged' end
  redis.call('HSET', KEYS[1], 'control', 'paused')
  event('paused')
  return 'ok'
elseif action == 'resume' then
  if cur == 'cancelled' then return 'cancelled' end
  if cur ~= 'paused' then return 'not_paused' end
  redis.call('HDEL', KEYS[1], 'control')
  requeue()
  event('resumed')
  return 'ok'
elseif action == 'cancel' then
  if cur == 'cancelled' then return 'unchanged' end
  redis.call('HSET', KEYS[1], 'control', 'cancelled')
  event('cancelled')
  requeue()
  -- Scheduled members are "<held_from>\n<job JSON>"; the JSON is herald's
  -- compact form or, for a job held until its not_before, the text as it
  -- was enqueued (any spacing): a cheap find of the quoted id picks the
  -- candidates and the decoded id decides.
  local needle = cjson.encode(ARGV[2])
  for _, m in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
    local nl = string.find(m, '\n', 1, true)
    if nl and string.find(m, needle, nl, true) then
      local ok, job = pcall(cjson.decode, string.sub(m, nl + 1))
      if ok and type(job) == 'table' and job.id == ARGV[2] then
        redis.call('XADD', KEYS[3], '*', 'job', string.sub(m, nl + 1), 'held_from', string.sub(m, 1, nl - 1))
        redis.call('ZREM', KEYS[4], m)
      end
    end
  end
  return 'ok'
end
return redis.error_reply('ERR campaign_control: unknown action')
