#!lua
-- campaign_outcomes.lua: one page of a campaign's outcomes, read from its
-- latest run's recipient source and each person's once-only record for
-- the campaign (never the audit stream). Reads only. The source is the
-- run's inline ids (the ids list, by offset) or its recipients_key (a SET
-- or ZSET by SSCAN/ZSCAN cursor, a LIST by offset), read as it is now.
-- The one place that knows where a person's record of a campaign lives
-- for this read (key layout 2: the field ARGV[2] of the person hash): the
-- record may move to another layout, this script follows it. The person
-- keys are read by name (ARGV[1] .. '{' .. id .. '}'), not declared: for a
-- single Redis.
-- On a cluster ARGV[1] is '': the records are on the people's slots, so
-- each comes back '' for the caller to read; a recipients_key (on a slot of
-- its own) is answered {2, key}, and the caller runs the script again on
-- that key alone (KEYS[1] the source, ARGV[5] 'source'), which reads only
-- the page of ids.
-- KEYS: 1 campaign hash, 2 the run's ids list.
-- ARGV: 1 person key prefix ("herald:r:"), 2 the record's field
-- ("c:<campaign>"), 3 cursor (decimal), 4 limit.
-- Returns {0} (no such campaign), or {1, next cursor ('' when the source
-- is read to its end), {id, record ('' none), id, record, ...}}.
local cur, n = ARGV[3], tonumber(ARGV[4])
local ids, nxt = {}, ''
local function by_offset(key)
  local off = tonumber(cur) or 0
  ids = redis.call('LRANGE', key, off, off + n - 1)
  if #ids == n and redis.call('LLEN', key) > off + n then nxt = tostring(off + n) end
end
local rk
if ARGV[5] == 'source' then
  rk = KEYS[1]
else
  if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
  rk = redis.call('HGET', KEYS[1], 'recipients_key')
  if rk and ARGV[1] == '' then return {2, rk} end
end
if not rk then
  by_offset(KEYS[2])
else
  local t = redis.call('TYPE', rk)['ok']
  if t == 'set' then
    local r = redis.call('SSCAN', rk, cur, 'COUNT', n)
    ids = r[2]
    if r[1] ~= '0' then nxt = r[1] end
  elseif t == 'zset' then
    local r = redis.call('ZSCAN', rk, cur, 'COUNT', n)
    for i = 1, #r[2], 2 do ids[#ids + 1] = r[2][i] end
    if r[1] ~= '0' then nxt = r[1] end
  elseif t == 'list' then
    by_offset(rk)
  end
end
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = ARGV[1] ~= '' and redis.call('HGET', ARGV[1] .. '{' .. id .. '}', ARGV[2]) or ''
end
return {1, nxt, out}
