#!lua
-- campaign_get.lua: a campaign's latest run and its earlier ones, read in
-- one step (GET /v1/campaigns/{id}, heraldctl campaign). Reads only.
-- KEYS: 1 campaign hash, 2 runs hash (run number -> the run's fields as a
-- JSON object; campaign_enqueue.lua).
-- Returns {HGETALL campaign hash, HGETALL runs hash}.
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
