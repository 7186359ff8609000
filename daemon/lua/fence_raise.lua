#!lua flags=allow-cross-slot-keys
-- fence_raise.lua: the fence of a job's stream entry on the slots of one
-- node of a cluster (docs/architecture.md "Guarantees"). Each key is the
-- fence hash of one slot (entry -> epoch of the run that owns the entry);
-- they move with their slots when a cluster is resharded.
-- raise: a run that claimed the entry stores its epoch in every one, so
-- that an older run of the entry writes nothing anywhere from now on;
-- 'lost' (nothing written) when a newer run raised one already.
-- drop: the entry is done (acknowledged): its fields go, so that no run
-- of it writes again; a newer run's field stays.
-- KEYS: the fence hashes. ARGV: 1 entry, 2 epoch, 3 raise|drop, 4 ttl (s).
local entry, mine = ARGV[1], tonumber(ARGV[2])
if ARGV[3] == 'raise' then
  for _, k in ipairs(KEYS) do
    local cur = tonumber(redis.call('HGET', k, entry))
    if cur and cur > mine then return 'lost' end
  end
  for _, k in ipairs(KEYS) do
    redis.call('HSET', k, entry, ARGV[2])
    redis.call('EXPIRE', k, ARGV[4])
  end
else
  for _, k in ipairs(KEYS) do
    local cur = tonumber(redis.call('HGET', k, entry))
    if cur and cur <= mine then redis.call('HDEL', k, entry) end
  end
end
return 'ok'
