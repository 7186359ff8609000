-- On a cluster a per-node script declares no key (Redis refuses declared
-- keys of several slots, allow-cross-slot-keys or not: that flag is for the
-- keys a script touches undeclared, on its own node). ARGV[1] is then
-- '#<n>' and ARGV[2 .. n+1] its keys, read here into KEYS and ARGV as a
-- single instance gives them. Every key is touched once before anything is
-- written: one a reshard moved away (or is moving) raises an error, and the
-- script answers "not served" having written nothing, so that the caller
-- splits its batch again (STORE_E_REGROUP) rather than meet it half way.
local KEYS, ARGV = KEYS, ARGV
if #KEYS == 0 and ARGV[1] and string.sub(ARGV[1], 1, 1) == '#' then
  local n, k, a = tonumber(string.sub(ARGV[1], 2)), {}, {}
  for i = 1, n do
    k[i] = ARGV[i + 1]
    local e = redis.pcall('EXISTS', k[i])
    if type(e) == 'table' and e.err then
      return redis.error_reply('TRYAGAIN a key of this batch is not served here (a slot is moving)')
    end
  end
  for i = n + 2, #ARGV do a[#a + 1] = ARGV[i] end
  KEYS, ARGV = k, a
end
-- fence.lua: prepended to every script that writes for a job run.
-- A run may write only while its consumer still owns the job's stream
-- entry: a daemon that was paused past claim_idle, and whose entry another
-- daemon took over, must not write over the new owner's records. Returns
-- true while `consumer` owns `entry`; false when another consumer does, or
-- when the entry or the stream is gone (acknowledged, or Redis came back
-- empty). Any other error (an ACL denial) is raised: it is no answer.
-- On a cluster (group ''), the stream's entry lives on another node: the
-- fence is then `stream`, this node's fence hash (entry -> the epoch of the
-- run that owns it, raised on every slot when a run claims the entry,
-- lua/fence_raise.lua), and `consumer` is this run's epoch: a newer epoch
-- stored, or none (the entry is done, or its fence was never raised), is
-- lost; an older one is raised to ours (docs/architecture.md "Guarantees").
local function fence(stream, group, entry, consumer)
  if group == '' then
    local cur = tonumber(redis.call('HGET', stream, entry))
    local mine = tonumber(consumer)
    if not cur or cur > mine then return false end
    if cur < mine then redis.call('HSET', stream, entry, consumer) end
    return true
  end
  local p = redis.pcall('XPENDING', stream, group, entry, entry, 1)
  if type(p) == 'table' and p.err then
    if string.sub(p.err, 1, 7) == 'NOGROUP' then return false end
    return error(p)
  end
  return p[1] ~= nil and p[1][2] == consumer
end
