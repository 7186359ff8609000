#!lua
-- finish.lua: the writes that close a batch of outcomes: per recipient the
-- once-only record, the person's history (capped at HISTORY_MAX), the
-- sends entry given back after a permanent failure, the audit record and
-- the campaign's progress counters. A person erased while their message
-- was in flight gets no record and no history back (the audit record,
-- which names no address, stays): for a recipient holding a reservation
-- the erasure shows as its record being gone, for any other as the person
-- hash being gone. Idempotent: when a recipient's record already reads as
-- this outcome (the command was sent again after a lost connection),
-- nothing more is written for them; a recipient with no record (flag "n",
-- or erased) is written only the first time "<entry> <id>" joins the
-- campaign's norecord set. So the audit and the counters never count one
-- recipient twice in one run.
-- It also records the handoff of the messages about to reach a provider
-- (reserved -> pending: "handed to a provider"), so that a loop iteration's outcomes and its
-- handoffs cost one round trip, not two.
-- KEYS: 1 jobs stream, 2 audit stream, 3 campaign hash, 4 campaign
-- norecord set, then per outcome: campaigns hash, history list, sends
-- zset, person hash; then per handoff: campaigns hash.
-- ARGV: 1 group, 2 entry, 3 consumer (the fence), 4 audit maxlen,
-- 5 campaign, 6 the run's record entry, 7 the number of outcomes, then per
-- outcome 14 values: id, record ("" none), sends member to remove ("" none),
-- history JSON ("" none), channel, outcome, reason, provider, provider_id,
-- at, progress field, flags ("r" holds a reservation, "d" leaves the
-- deferred count, "n" no record but written once), requests (sent to
-- providers, "" none), locale (the content's language, "" none; only with
-- requests); then per handoff: its handed record ("pending ...").
-- Returns 'lost' (nothing written), or {outcomes written, {per handoff 1
-- (handed: send it) or 0 (its reservation is gone: do not)}}.
local HISTORY_MAX = 100
if not fence(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 'lost' end
local campaign = ARGV[5]
local nout = tonumber(ARGV[7])
local n, i, incr = 0, 8, {}
for k = 5, 4 + 4 * nout, 4 do
  local camps, hist, sends = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local id, record, unsend, h = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local flags, cur = ARGV[i + 11], nil
  local once = string.find(flags, 'n', 1, true)
  if string.find(flags, 'r', 1, true) then
    cur = redis.call('HGET', camps, campaign)
    if not cur then record, h, once = '', '', true end
  elseif record ~= '' and redis.call('EXISTS', KEYS[k + 3]) == 0 then record, h, once = '', '', true
  elseif record ~= '' then cur = redis.call('HGET', camps, campaign) end
  local write = record == '' or cur ~= record
  if write and record == '' and once then write = redis.call('SADD', KEYS[4], ARGV[6] .. ' ' .. id) == 1 end
  if write then
    if unsend ~= '' then redis.call('ZREM', sends, unsend) end
    if record ~= '' then redis.call('HSET', camps, campaign, record) end
    if h ~= '' and redis.call('LPUSH', hist, h) > HISTORY_MAX then
      redis.call('LTRIM', hist, 0, HISTORY_MAX - 1)
    end
    -- Two spellings rather than a table and unpack: this runs per message.
    if ARGV[i + 13] ~= '' then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'campaign', campaign, 'recipient', id,
                 'channel', ARGV[i + 4], 'outcome', ARGV[i + 5], 'reason', ARGV[i + 6], 'provider', ARGV[i + 7],
                 'provider_id', ARGV[i + 8], 'at', ARGV[i + 9], 'requests', ARGV[i + 12], 'locale', ARGV[i + 13])
    elseif ARGV[i + 12] ~= '' then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'campaign', campaign, 'recipient', id,
                 'channel', ARGV[i + 4], 'outcome', ARGV[i + 5], 'reason', ARGV[i + 6], 'provider', ARGV[i + 7],
                 'provider_id', ARGV[i + 8], 'at', ARGV[i + 9], 'requests', ARGV[i + 12])
    else
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'campaign', campaign, 'recipient', id,
                 'channel', ARGV[i + 4], 'outcome', ARGV[i + 5], 'reason', ARGV[i + 6], 'provider', ARGV[i + 7],
                 'provider_id', ARGV[i + 8], 'at', ARGV[i + 9])
    end
    incr[ARGV[i + 10]] = (incr[ARGV[i + 10]] or 0) + 1
    if string.find(flags, 'd', 1, true) then
      incr['deferred:quiet_hours'] = (incr['deferred:quiet_hours'] or 0) - 1
    end
    n = n + 1
  end
  i = i + 14
end
for f, v in pairs(incr) do redis.call('HINCRBY', KEYS[3], f, v) end
-- A handoff is one HSET, not a read and a write: while the fence holds,
-- only this run writes the field (its reservation, or its own handed
-- record when the command is sent again after a lost connection), and the
-- one other writer removes it: erasure, which deletes the whole hash. So
-- HSET answering 1 (a new field) means the reservation is gone: the
-- field it just created goes again, and the message is not sent.
local handed, h = {}, 0
for k = 5 + 4 * nout, #KEYS do
  h = h + 1
  if redis.call('HSET', KEYS[k], campaign, ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[k], campaign)
    handed[h] = 0
  else
    handed[h] = 1
  end
  i = i + 1
end
return {n, handed}
