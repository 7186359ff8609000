#!lua flags=allow-cross-slot-keys
-- finish.lua: the writes that close a batch of outcomes: per recipient the
-- once-only record (the field 'c:<campaign>' of the person hash), the
-- person's history entry (the field 'h<slot>' of the person hash: a ring
-- of ARGV[8] entries, its cursor 'hn' the next slot; a reserved message's
-- slot was taken, and written empty, by lua/reserve.lua: its record and
-- entry go in one HSET; any other decision takes its slot
-- here, its cursor read with the rev it reads anyway, and writes it with
-- its record), the sends entry given back after a permanent failure, the
-- audit record (the stream trimmed once per call) and the campaign's
-- progress counters. A person erased while their message was in flight gets no
-- record and no history back (the audit record, which names no address,
-- stays): the person hash, which holds the record, is gone. A recipient
-- with no record (flag "n", or erased) is written only the first time
-- "<entry> <id>" joins the campaign's norecord set, so the audit and the
-- counters never count one recipient twice in one run.
-- Idempotent without a read per message sent: the batch's id ("#<daemon
-- run>:<sequence>") joins the norecord set first. Found there already,
-- the batch is a replay (sent again after a lost connection, or after an
-- error that stopped it part way): each recipient holding a reservation
-- is then compared with its stored record, and only what is missing is
-- written, as a first pass would have. A decision without a reservation
-- is always compared (state, entry and run): the job may list an id twice.
-- It also records the handoff of the messages about to reach a provider
-- (reserved -> pending: "handed to a provider"), so that a loop
-- iteration's outcomes and its handoffs cost one round trip, not two.
-- KEYS: 1 jobs stream, 2 audit stream, 3 campaign hash, 4 campaign
-- norecord set, then per outcome: person hash (its sends zset, in the same
-- slot, is named from it: `<person>:sends`); then the handoffs' keys:
-- on one Redis the run's handed log and erased set (below), on a cluster
-- per handoff its person hash.
-- ARGV: 1 group, 2 entry, 3 consumer (the fence), 4 audit maxlen,
-- 5 campaign, 6 the run's record entry, 7 the batch id, 8 the history's
-- length ([retention] history), 9 the number of outcomes, 10 the number
-- of kinds, then per kind (what outcomes share, sent once: each value
-- costs Redis about 900 instructions to read and turn into a Lua string)
-- 10 values: channel, outcome, reason, provider, at, flags ("r" holds a
-- reservation, "d" leaves the deferred count, "n" no record but written
-- once, "x" its outcomes carry the two extra values below), requests (sent
-- to providers, "" none), locale (the content's language, "" none; only
-- with requests), record ("" none), history entry ("" none); then per
-- outcome 4 values: id, provider_id, history field (the reservation's
-- slot 'h<slot>', "" none: taken here), its kind (1, 2, ...: its place
-- among the kinds), and with a kind flagged "x" 2 more: sends member to
-- remove ("" none), provider id key ("" none: `feedback = on` providers
-- only, see below); then the handoffs: on one Redis "@" and what the run's
-- handed log takes (below); on a cluster (and for reservations without a
-- number) per handoff its handed record ("p ...": pending).
-- A provider id key (<prefix>:pid:<provider>:<provider id>) maps the
-- provider's message id to "campaign recipient channel" for PID_TTL
-- seconds, so that the provider's delivery callbacks find the message:
-- one SET per message of such a provider, none otherwise. On a cluster
-- (group '', the fence an epoch, lua/fence.lua) the keys are this node's
-- (audit stream, the campaign's counters and norecord set under the
-- node's hash tag) and store_job.c SETs the provider id keys after it,
-- each on its own slot.
-- Returns 'lost' (nothing written), or {outcomes written, {per handoff 1
-- (handed: send it) or 0 (its reservation is gone: do not)}}.
local HISTORY_MAX = tonumber(ARGV[8])
-- HSET of the record answered 1 (a new field): its reservation is gone.
-- Erasure deletes the whole hash: then the field just created goes again.
-- A person still stored (their rev is there) lost only the reservation:
-- on a cluster, to a failover that kept a replica's older copy of the
-- hash (the WAIT that followed it failed). The record just written
-- stands, and the message goes on, as the reservation said.
local function kept(person)
  return redis.call('HEXISTS', person, 'rev') == 1
end
local PID_TTL = 30 * 86400 -- WEBHOOKS_PID_TTL_S in daemon/webhooks.h
if not fence(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 'lost' end
local campaign = ARGV[5]
local rf = 'c:' .. campaign
local replay = redis.call('SADD', KEYS[4], '#' .. ARGV[7]) == 0
local nout, nkinds = tonumber(ARGV[9]), tonumber(ARGV[10])
local n, i, incr = 0, 11, {}
-- Each kind read once: its flags and its progress field (the outcome, and
-- its reason but for sent and unknown: "suppressed:no_consent") worked out
-- once per call rather than per outcome. Named by the string each outcome
-- sends (no tonumber per outcome).
local kinds = {}
for k = 1, nkinds do
  local flags, pf = ARGV[i + 5], ARGV[i + 1]
  if pf ~= 'sent' and pf ~= 'unknown' then pf = pf .. ':' .. ARGV[i + 2] end
  kinds[tostring(k)] = {
    ch = ARGV[i], outcome = ARGV[i + 1], reason = ARGV[i + 2], provider = ARGV[i + 3], at = ARGV[i + 4],
    only_r = flags == 'r', r = string.find(flags, 'r', 1, true) ~= nil, d = string.find(flags, 'd', 1, true) ~= nil,
    n = string.find(flags, 'n', 1, true) ~= nil, x = string.find(flags, 'x', 1, true) ~= nil,
    requests = ARGV[i + 6], locale = ARGV[i + 7], record = ARGV[i + 8], h = ARGV[i + 9], pf = pf}
  i = i + 10
end
for k = 5, 4 + nout do
  local person = KEYS[k]
  local id, pid, slot = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local kd = kinds[ARGV[i + 3]]
  local record, h = kd.record, kd.h
  local unsend, pidkey = '', ''
  if kd.x then unsend, pidkey = ARGV[i + 4], ARGV[i + 5] end
  local once = kd.n
  -- stored: the record is written; hn: the cursor read, a slot to take.
  local write, stored, hn = true, false, nil
  if kd.r and not replay then
    -- The record and the entry in one HSET, answering how many fields it
    -- created: none, as the reservation wrote both (the entry's slot empty,
    -- lua/reserve.lua). One created means the reservation is gone: the
    -- person hash that held it was erased, and what it created goes again
    -- (unless the person is still stored: kept, above; the record and the
    -- entry then stand).
    local both = h ~= '' and slot ~= ''
    local created
    if both then created = redis.call('HSET', person, rf, record, slot, h)
    else created = redis.call('HSET', person, rf, record) end
    if created ~= 0 and not kept(person) then
      if both then redis.call('HDEL', person, rf, slot) else redis.call('HDEL', person, rf) end
      record, h, once = '', '', true
    else
      stored = true
      if both then h = '' end -- written
    end
  elseif kd.r then
    local cur = redis.call('HGET', person, rf)
    if not cur then record, h, once = '', '', true else write = cur ~= record end
  elseif record ~= '' then
    -- A decision without a reservation (the policy's): the person hash
    -- without its rev is an erased person; a record of the same state by
    -- this same run is this outcome already written (a replay, or a
    -- second copy of the id in the job's recipients).
    local cur = redis.call('HMGET', person, 'rev', rf, 'hn')
    if not cur[1] then
      record, h, once = '', '', true
    elseif cur[2] and string.match(cur[2], '^%S+ %S+ %S+') == string.match(record, '^%S+ %S+ %S+') then
      write = false
    else
      slot, hn = '', cur[3] or ''
    end
  end
  if write and record == '' and once then write = redis.call('SADD', KEYS[4], ARGV[6] .. ' ' .. id) == 1 end
  if write then
    if unsend ~= '' then redis.call('ZREM', person .. ':sends', unsend) end
    if h ~= '' and slot == '' and not hn then
      -- History without a slot (a duplicate, or a reservation made before
      -- slots): a stored person's next one; none for a person not stored.
      local cur = redis.call('HMGET', person, 'rev', 'hn')
      if cur[1] then hn = cur[2] or '' else h = '' end
    end
    local put = record ~= '' and not stored
    if h ~= '' and hn then
      local s, nxt = ring_next(hn, HISTORY_MAX)
      if put then
        redis.call('HSET', person, rf, record, 'hn', nxt, s, h)
      else
        redis.call('HSET', person, 'hn', nxt, s, h)
      end
      -- The ring turns: a list written before it goes (as in lua/reserve.lua).
      if nxt == '0' then redis.call('DEL', person .. ':history') end
    elseif h ~= '' then
      if put then redis.call('HSET', person, rf, record, slot, h) else redis.call('HSET', person, slot, h) end
    elseif put then
      redis.call('HSET', person, rf, record)
    end
    -- Three spellings rather than a table and unpack: this runs per message
    -- (and the stream is trimmed once per call, below, not per record).
    if kd.locale ~= '' then
      redis.call('XADD', KEYS[2], '*', 'campaign', campaign, 'recipient', id,
                 'channel', kd.ch, 'outcome', kd.outcome, 'reason', kd.reason, 'provider', kd.provider,
                 'provider_id', pid, 'at', kd.at, 'requests', kd.requests, 'locale', kd.locale)
    elseif kd.requests ~= '' then
      redis.call('XADD', KEYS[2], '*', 'campaign', campaign, 'recipient', id,
                 'channel', kd.ch, 'outcome', kd.outcome, 'reason', kd.reason, 'provider', kd.provider,
                 'provider_id', pid, 'at', kd.at, 'requests', kd.requests)
    else
      redis.call('XADD', KEYS[2], '*', 'campaign', campaign, 'recipient', id,
                 'channel', kd.ch, 'outcome', kd.outcome, 'reason', kd.reason, 'provider', kd.provider,
                 'provider_id', pid, 'at', kd.at)
    end
    incr[kd.pf] = (incr[kd.pf] or 0) + 1
    if kd.d then
      incr['deferred:quiet_hours'] = (incr['deferred:quiet_hours'] or 0) - 1
    end
    if pidkey ~= '' and ARGV[1] ~= '' then
      redis.call('SET', pidkey, campaign .. ' ' .. id .. ' ' .. kd.ch, 'EX', PID_TTL)
    end
    n = n + 1
  end
  i = i + (kd.x and 6 or 4)
end
if n > 0 then redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', ARGV[4]) end
for f, v in pairs(incr) do redis.call('HINCRBY', KEYS[3], f, v) end
-- On one Redis a handoff writes nothing of the person's: the run's handed
-- log (KEYS[5 + nout], "<prefix>:handed:<run>") is a bitmap whose bit
-- <seq> says that reservation was handed to a provider (so a run that
-- takes the job over calls its message unknown: store_job.c's lookup).
-- store_job.c keeps the run's log as its writes sent it and sends whole
-- the bytes these handoffs touch, in stretches: one SETRANGE each, no
-- read, nothing per handoff here. The person erased since the reservation
-- is told by the run's erased set (KEYS[6 + nout], "<prefix>:erased:<run>":
-- the sequence numbers of its reservations that lua/people_erase.lua
-- found): that handoff answers 0 (its bit may be set: no record of an
-- erased person is ever looked up again). The log is kept until
-- ARGV[i + 1] (a year, or the records' end when later) unless the run
-- finishes its job first (lua/job_finished.lua deletes it). A replay (a
-- lost connection) writes the same bytes and reads the same set (nothing
-- here removes from it), so it answers as the first pass did.
-- ARGV from i: "@", that end, the number of handoffs, their sequence
-- numbers (separated by spaces), then per stretch its first byte and its
-- bytes.
if ARGV[i] == '@' then
  local log, gone = KEYS[5 + nout], KEYS[6 + nout]
  local handed = {}
  for j = 1, tonumber(ARGV[i + 2]) do handed[j] = 1 end
  if redis.call('EXISTS', gone) == 1 then
    local seqs = {}
    for sq in string.gmatch(ARGV[i + 3], '%d+') do seqs[#seqs + 1] = sq end
    local erased = redis.call('SMISMEMBER', gone, unpack(seqs))
    for j = 1, #seqs do
      if erased[j] == 1 then handed[j] = 0 end
    end
  end
  for s = i + 4, #ARGV - 1, 2 do redis.call('SETRANGE', log, ARGV[s], ARGV[s + 1]) end
  if #ARGV >= i + 4 then redis.call('EXPIREAT', log, ARGV[i + 1]) end
  return {n, handed}
end
-- On a cluster (and on one Redis for a reservation without a number) a
-- handoff is one HSET, not a read and a write: while the fence holds,
-- only this run writes the field (its reservation, or its own handed
-- record when the command is sent again after a lost connection), and the
-- one other writer removes it: erasure, which deletes the whole hash. So
-- HSET answering 1 (a new field) means the reservation is gone: the
-- field it just created goes again, and the message is not sent (unless
-- the person is still stored: kept, above).
local handed, hn = {}, 0
for k = 5 + nout, #KEYS do
  hn = hn + 1
  if redis.call('HSET', KEYS[k], rf, ARGV[i]) == 1 and not kept(KEYS[k]) then
    redis.call('HDEL', KEYS[k], rf)
    handed[hn] = 0
  else
    handed[hn] = 1
  end
  i = i + 1
end
return {n, handed}
