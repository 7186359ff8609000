-- ring.lua: prepended to the scripts that write a person's history (a ring
-- of fields 'h<slot>' of the person hash, its cursor 'hn' the next slot;
-- docs/architecture.md "Keys"). ring_next(cur, max): the field of the slot
-- the cursor cur names (nil: none yet) in a ring of max, and the cursor
-- after it, as strings: a Lua number written or read costs a printf or a
-- strtod, so each cursor value met is worked out once per call.
local ring_cache = {}
local function ring_next(cur, max)
  local r = ring_cache[cur or '']
  if not r then
    local s = (tonumber(cur) or 0) % max
    r = {'h' .. s, tostring((s + 1) % max)}
    ring_cache[cur or ''] = r
  end
  return r[1], r[2]
end
