#!lua
-- feedback_status.lua: one provider delivery event recorded against its
-- message, at most once: the event's dedupe key (SET NX EX), the audit
-- record (outcome delivered, bounced or complained, with the provider id)
-- and the campaign's counter (only while the campaign hash exists: an
-- event never creates one). Nothing is written when the key was set
-- before (the provider posted the event again).
-- KEYS: 1 dedupe key, 2 audit stream, 3 campaign hash.
-- ARGV: 1 dedupe ttl (s), 2 audit maxlen, 3 campaign, 4 recipient,
-- 5 channel, 6 outcome, 7 reason, 8 provider, 9 provider_id, 10 at.
-- Returns 1 (recorded) or 0 (seen before).
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'campaign', ARGV[3], 'recipient', ARGV[4],
           'channel', ARGV[5], 'outcome', ARGV[6], 'reason', ARGV[7], 'provider', ARGV[8],
           'provider_id', ARGV[9], 'at', ARGV[10])
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('HINCRBY', KEYS[3], ARGV[6], 1) end
return 1
