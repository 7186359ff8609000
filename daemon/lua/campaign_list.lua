#!lua
-- campaign_list.lua: one page of the campaigns index, newest first (by
-- the time the id was first enqueued, which a rerun does not change), with
-- each campaign's latest run. Reads only. The cursor is the last id of the
-- page before: its rank is looked up, so campaigns enqueued meanwhile
-- (they come first) neither repeat nor hide an entry of the next page.
-- The campaign hashes are read by name (ARGV[1] .. id): not declared
-- keys, so this script is for a single Redis (as herald's campaign keys,
-- which carry no hash tag, are).
-- KEYS: 1 campaigns index (zset).
-- ARGV: 1 campaign key prefix ("herald:campaign:"), 2 cursor ('' first
-- page), 3 limit.
-- Returns {1, next cursor ('' last page), {id, HGETALL, id, HGETALL, ...}},
-- or {0} when the cursor is no indexed id.
local start = 0
if ARGV[2] ~= '' then
  local r = redis.call('ZREVRANK', KEYS[1], ARGV[2])
  if not r then return {0} end
  start = r + 1
end
local n = tonumber(ARGV[3])
local ids = redis.call('ZREVRANGE', KEYS[1], start, start + n)
local out = {}
for i = 1, math.min(n, #ids) do
  out[#out + 1] = ids[i]
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. ids[i])
end
local nxt = ''
if #ids > n then nxt = ids[n] end
return {1, nxt, out}
