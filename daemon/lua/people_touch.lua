#!lua
-- people_touch.lua: moves a stored person's rev, so that a message looked
-- up before a change of something kept outside the person's keys (the
-- suppression list) is decided again. Nothing when no profile is stored.
-- KEYS: 1 person hash. Returns 1 when the rev moved, else 0.
if redis.call('HEXISTS', KEYS[1], 'profile') == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'rev', 1)
return 1
