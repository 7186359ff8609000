#!lua
-- limit.lua: one provider's limits shared by every daemon (limit.c).
-- KEYS: 1 the provider's hash <prefix>:limit:<provider>.
-- ARGV: 1 daemon run id, 2 emission interval ms (1000 / rate; 0: no rate),
--       3 the bucket's capacity in ms (tau: burst * interval), 4 tokens wanted,
--       5 concurrency (0: leases not shared), 6 leases wanted (more),
--       7 leases given back, 8 lease ttl ms, 9 wanting (1: it has messages
--       waiting for a lease), 10 the daemon's clock (unix ms: used only when
--       an ACL denies TIME), 11 tokens given back (lapsed unspent), 12 the
--       `tat` their grant answered.
-- Returns {tokens granted, ms until the next token (0: none short),
--          leases held by this run now, its fair share of the leases,
--          `tat` after this grant (a string; "" when none granted)}.
--
-- Rate: GCRA on Redis's clock (TIME: every daemon reads the same one), the
-- theoretical arrival time in the field `tat` (ms, fractional). n tokens fit
-- when tat + n * interval - now <= tau.
-- Leases: field `l:<run>` = "<held> <expires ms> <wanting>", renewed by each
-- call (limit.c calls at least every second); an expired one (its daemon
-- died or lost Redis) is dropped, and its leases come back. A run is given
-- no more than ceil(concurrency / runs holding or wanting), so a busy daemon
-- gives way to a second one (limit.c gives back what is above its share).
local t = redis.pcall('TIME')
local now
if type(t) == 'table' and t[1] and t[2] then
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[10])
end
local key = KEYS[1]
local interval, tau, want = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local granted, wait, after = 0, 0, ''
-- Tokens given back: only when no grant came after theirs (tat is still
-- what their grant made it), and then exactly as if they were never granted.
local back = tonumber(ARGV[11]) or 0
if interval > 0 and back > 0 then
  local cur = redis.call('HGET', key, 'tat')
  if cur and cur == ARGV[12] then
    redis.call('HSET', key, 'tat', string.format('%.3f', tonumber(cur) - back * interval))
  end
end
if interval > 0 and want > 0 then
  local tat = tonumber(redis.call('HGET', key, 'tat') or '0') or 0
  if tat < now then tat = now end
  local fit = math.floor((now + tau - tat) / interval)
  if fit > want then fit = want end
  if fit > 0 then
    granted = fit
    tat = tat + fit * interval
    after = string.format('%.3f', tat)
    redis.call('HSET', key, 'tat', after)
  end
  if granted < want then
    wait = math.ceil(tat + interval - tau - now)
    if wait < 1 then wait = 1 end
  end
end
local conc = tonumber(ARGV[5])
local held, share = 0, 0
local ttl = tonumber(ARGV[8])
if conc > 0 then
  local mine = 'l:' .. ARGV[1]
  local f = redis.call('HGETALL', key)
  local others, runs = 0, 0
  for i = 1, #f, 2 do
    if string.sub(f[i], 1, 2) == 'l:' then
      local n, exp, w = string.match(f[i + 1], '^(%d+) (%d+) (%d)$')
      if not n or tonumber(exp) <= now then
        redis.call('HDEL', key, f[i])
      elseif f[i] == mine then
        held = tonumber(n)
      else
        others = others + tonumber(n)
        if tonumber(n) > 0 or w == '1' then runs = runs + 1 end
      end
    end
  end
  held = held - tonumber(ARGV[7])
  if held < 0 then held = 0 end
  local wanting = ARGV[9] == '1' or tonumber(ARGV[6]) > 0
  if held > 0 or wanting then runs = runs + 1 end
  if runs < 1 then runs = 1 end
  share = math.ceil(conc / runs)
  local more = tonumber(ARGV[6])
  if more > conc - others - held then more = conc - others - held end
  if more > share - held then more = share - held end
  if more > 0 then held = held + more end
  if held > 0 or wanting then
    redis.call('HSET', key, mine, held .. ' ' .. (now + ttl) .. ' ' .. (wanting and '1' or '0'))
  else
    redis.call('HDEL', key, mine)
  end
end
redis.call('PEXPIRE', key, math.ceil(tau + ttl) + 60000)
return {granted, wait, held, share, after}
