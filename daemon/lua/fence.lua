-- fence.lua: prepended to every script that writes for a job run.
-- A run may write only while its consumer still owns the job's stream
-- entry: a daemon that was paused past claim_idle, and whose entry another
-- daemon took over, must not write over the new owner's records. Returns
-- true while `consumer` owns `entry`; false when another consumer does, or
-- when the entry or the stream is gone (acknowledged, or Redis came back
-- empty). Any other error (an ACL denial) is raised: it is no answer.
local function fence(stream, group, entry, consumer)
  local p = redis.pcall('XPENDING', stream, group, entry, entry, 1)
  if type(p) == 'table' and p.err then
    if string.sub(p.err, 1, 7) == 'NOGROUP' then return false end
    return error(p)
  end
  return p[1] ~= nil and p[1][2] == consumer
end
