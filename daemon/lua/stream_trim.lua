#!lua
-- stream_trim.lua: deletes the entries of a stream older than an age
-- (stream_trim.c), but never one a consumer group of the stream has not
-- read yet or has read and not acknowledged (the events [events] url has
-- not had, herald-events; or a marketing system's own group).
-- KEYS: 1 the stream. ARGV: 1 the MINID: entries with a smaller id go.
-- Returns how many were deleted (0 when the stream does not exist).
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local minid = ARGV[1]
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if groups.err then return 0 end -- no such stream
for _, g in ipairs(groups) do
  local t = {}
  for i = 1, #g, 2 do t[g[i]] = g[i + 1] end
  -- What comes after last-delivered-id is unread: keep it.
  local last = t['last-delivered-id']
  if last then
    local ms, seq = string.match(last, '^(%d+)-(%d+)$')
    local after = ms .. '-' .. tostring(tonumber(seq) + 1)
    if less(after, minid) then minid = after end
  end
  if (tonumber(t.pending) or 0) > 0 then
    local p = redis.call('XPENDING', KEYS[1], t.name)
    if p[2] and less(p[2], minid) then minid = p[2] end
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', minid)
