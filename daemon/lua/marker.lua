#!lua
-- marker.lua: what a daemon checks each time it reaches Redis: herald's
-- marker key (its loss says that Redis came back empty) and the version of
-- the key layout (docs/architecture.md, "Keys").
-- KEYS: 1 marker, 2 layout, 3 audit stream.
-- ARGV: 1 now (unix s), 2 the layout this build reads and writes.
-- Returns {1 when the marker was absent (set now) else 0, the layout
-- found}. A Redis that holds no layout key gets this build's, unless
-- herald has written to it before (the marker, or an audit stream, is
-- there): that data is of layout "1", before the key existed.
local absent = not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET')
local layout = redis.call('GET', KEYS[2])
if not layout then
  if not absent or redis.call('EXISTS', KEYS[3]) == 1 then
    layout = '1'
  else
    redis.call('SET', KEYS[2], ARGV[2])
    layout = ARGV[2]
  end
end
return {absent and 1 or 0, layout}
