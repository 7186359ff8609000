#!lua
-- release_due.lua: moves due scheduled jobs back to the stream.
-- KEYS: 1 scheduled zset, 2 jobs stream. ARGV: 1 now (unix s), 2 max jobs.
-- Each moved entry gets fields `job` and `held_from` (the entry id it was
-- held as). Returns the number moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local nl = string.find(m, '\n', 1, true)
  if nl then
    redis.call('XADD', KEYS[2], '*', 'job', string.sub(m, nl + 1), 'held_from', string.sub(m, 1, nl - 1))
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due
