#!lua flags=allow-cross-slot-keys
-- reserve.lua: the atomic check-and-reserve of a batch of messages.
-- For each recipient in one step it checks that the person's data did not
-- change since the lookup (rev), once-only (no record of the campaign that
-- says reserved, pending, sent or unknown, other than the leftover of a
-- dead run this run takes over), every applicable ops cap in order, and
-- the person's own frequency limits, against the messages in the person's
-- sends history; if all pass it writes the record `r ...` (reserved) and adds
-- the message to the sends history. The record is the field 'c:<campaign>'
-- of the person hash, read with the rev in one HMGET. The reservation also
-- takes the message's slot in the person's history, a ring of fields
-- 'h<slot>' of the person hash (the cursor 'hn', read in that HMGET, is
-- the next slot), in the same HSET as the record, which writes the slot
-- empty: lua/finish.lua writes the entry there with the outcome, without
-- reading the cursor, in one HSET with the record. A
-- person's keys share the {ID} hash tag;
-- since the script runs atomically, N daemons racing on one person can
-- never exceed a cap, not even by one.
-- KEYS: 1 jobs stream, then per recipient: person hash (its sends zset, in
-- the same slot, is named from it where it is used: `<person>:sends`).
-- ARGV: 1 group, 2 entry, 3 consumer (the fence), 4 now (s), 5 campaign,
-- 6 topic, 7 the history's length ([retention] history), 8 ncaps, then
-- per cap: name, channel (email|sms|any), limit, window (s), topics
-- (",a,b," or "" for all); then the call's usual channel; then per
-- recipient: rev read at lookup ("" when none), record, and "" when the
-- recipient is on the usual channel and the rest is none (no prior, no
-- sends member, no history to keep, no limits: most recipients, 3 values:
-- each value costs Redis about 900 instructions to read and turn into a
-- Lua string), else "+" then channel, prior (the dead run's reservation it
-- replaces, "" none), sends member ("" when neither kept nor taken over),
-- history to keep (s, 0: none), nfreq, then per limit: channel
-- (email|sms|any), limit, window (s).
-- Returns 'lost', or one value per recipient (one reply element: Redis
-- costs about 600 instructions each): its history slot's field 'h<slot>'
-- when reserved ("ok"), else "stale" (decide again), "duplicate <record>",
-- "cap <name>" or "user_frequency".
if not fence(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 'lost' end
local now, campaign, topic = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local HISTORY_MAX = tonumber(ARGV[7])
local ncaps = tonumber(ARGV[8])
local caps = {}
for c = 0, ncaps - 1 do
  local b = 9 + 5 * c
  caps[#caps + 1] = {ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), ARGV[b + 4]}
end
local i = 9 + 5 * ncaps
local uch = ARGV[i]
i = i + 1
local rf = 'c:' .. campaign
-- The states that reached the person: their codes (store_rec_state_code)
-- and the names records were written with before them.
local REACHED = {r = true, p = true, s = true, u = true,
                 reserved = true, pending = true, sent = true, unknown = true}
local none = {} -- shared, never written: no table per recipient without limits
local function count(hist, cch, win, topics)
  local n = 0
  for j = 1, #hist do
    local h = hist[j]
    if h[1] > now - win and (cch == 'any' or h[2] == cch) and
       (topics == '' or string.find(topics, ',' .. h[3] .. ',', 1, true)) then n = n + 1 end
  end
  return n
end
local function reserve(person, rev, record, prior, ch, member, keep, freq)
  local h = redis.call('HMGET', person, 'rev', rf, 'hn')
  if (h[1] or '') ~= rev then return 'stale', '' end
  local cur = h[2]
  if cur and prior ~= '' and cur == prior then
    -- A dead run's reservation of this message, never handed to a
    -- provider: its history entry is this message's, not another.
    redis.call('ZREM', person .. ':sends', member)
  elseif cur then
    if REACHED[string.match(cur, '^(%a+)')] then return 'duplicate', cur end
  end
  local hist, sends = none, nil
  if keep > 0 then
    sends, hist = person .. ':sends', {}
    local raw = redis.call('ZRANGEBYSCORE', sends, '(' .. (now - keep), '+inf', 'WITHSCORES')
    for j = 1, #raw, 2 do
      local hc, ht = string.match(raw[j], '^([^|]*)|([^|]*)|')
      hist[#hist + 1] = {tonumber(raw[j + 1]), hc, ht}
    end
  end
  -- Numeric loops: ipairs is a function call each, per recipient.
  for ci = 1, ncaps do
    local c = caps[ci]
    if (c[2] == 'any' or c[2] == ch) and (c[5] == '' or string.find(c[5], ',' .. topic .. ',', 1, true)) and
       count(hist, c[2], c[4], c[5]) >= c[3] then return 'cap', c[1] end
  end
  for fi = 1, #freq do
    local f = freq[fi]
    if (f[1] == 'any' or f[1] == ch) and count(hist, f[1], f[3], '') >= f[2] then return 'user_frequency', '' end
  end
  local slot, nxt = ring_next(h[3], HISTORY_MAX)
  -- The slot is written empty (a slot not written yet, to every reader):
  -- lua/finish.lua's one HSET of the record and the entry then creates no
  -- field, and one it does create says the person hash went meanwhile.
  redis.call('HSET', person, rf, record, 'hn', nxt, slot, '')
  if nxt == '0' then
    -- The ring turns: a history list written before it (read after the
    -- ring, store_history_read) is never shown again.
    redis.call('DEL', person .. ':history')
  end
  if keep > 0 then
    redis.call('ZADD', sends, now, member)
    redis.call('ZREMRANGEBYSCORE', sends, '-inf', now - keep)
    redis.call('EXPIRE', sends, keep + 60)
  end
  return 'ok', slot
end
local out = {}
for k = 2, #KEYS do
  local v, d
  if ARGV[i + 2] == '' then
    v, d = reserve(KEYS[k], ARGV[i], ARGV[i + 1], '', uch, '', 0, none)
    i = i + 3
  else
    -- "0" read as 0 without tonumber (a strtod): no limits, or no caps
    -- that need the history, are the usual case here too.
    local nf = ARGV[i + 7] == '0' and 0 or tonumber(ARGV[i + 7])
    local freq = nf > 0 and {} or none
    for f = 0, nf - 1 do
      local b = i + 8 + 3 * f
      freq[#freq + 1] = {ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])}
    end
    local keep = ARGV[i + 6] == '0' and 0 or tonumber(ARGV[i + 6])
    v, d = reserve(KEYS[k], ARGV[i], ARGV[i + 1], ARGV[i + 4], ARGV[i + 3], ARGV[i + 5], keep, freq)
    i = i + 8 + 3 * nf
  end
  if v == 'ok' then out[k - 1] = d elseif d == '' then out[k - 1] = v else out[k - 1] = v .. ' ' .. d end
end
return out
