#!lua
-- dead_letter.lua: a refused job entry goes to the dead-letter stream with
-- every field it arrived with, then is acknowledged.
-- KEYS: 1 jobs stream, 2 dead-letter stream. ARGV: 1 group, 2 entry,
-- 3 error, 4 the job's text ('' when the entry has none).
-- The dead letter holds error, entry (the `job` field), job_entry and, for
-- every other field of the entry whatever its name, `field:<name>` with its
-- value byte for byte: a job sent under a misspelt field name is kept, not
-- lost (docs/schemas/dead-letter.schema.json). At most MAX_FIELDS are
-- copied (unpack has a limit, and a dead letter that cannot be written
-- would hold the stream up); the count of the others is `fields_omitted`.
-- An entry already deleted from the stream leaves only what the caller
-- passed. Returns the dead letter's id.
local MAX_FIELDS = 1000
local args = {'error', ARGV[3], 'entry', ARGV[4], 'job_entry', ARGV[2]}
local got = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if got[1] then
  local f, copied, omitted = got[1][2], 0, 0
  for i = 1, #f, 2 do
    if f[i] ~= 'job' then
      if copied < MAX_FIELDS then
        args[#args + 1] = 'field:' .. f[i]
        args[#args + 1] = f[i + 1]
        copied = copied + 1
      else
        omitted = omitted + 1
      end
    end
  end
  if omitted > 0 then
    args[#args + 1] = 'fields_omitted'
    args[#args + 1] = tostring(omitted)
  end
end
local id = redis.call('XADD', KEYS[2], '*', unpack(args))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return id
