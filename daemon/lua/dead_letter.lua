#!lua
-- dead_letter.lua: a refused job entry goes to the dead-letter stream with
-- every field it arrived with, its addresses redacted, then is
-- acknowledged and deleted from the jobs stream.
-- KEYS: 1 jobs stream, 2 dead-letter stream. ARGV: 1 group, 2 entry,
-- 3 error, 4 the job's text ('' when the entry has none).
-- The dead letter holds error, entry (the `job` field), job_entry and, for
-- every other field of the entry whatever its name, `field:<name>` with its
-- value: a job sent under a misspelt field name is kept, not lost
-- (docs/schemas/dead-letter.schema.json). At most MAX_FIELDS are copied
-- (unpack has a limit, and a dead letter that cannot be written would hold
-- the stream up); the count of the others is `fields_omitted`. An entry
-- already deleted from the stream leaves only what the caller passed.
-- Every text copied (error, entry, each field's name and value) is
-- byte for byte what arrived except that each email address and phone
-- number in it is replaced by REDACTED (redact() below says exactly what
-- counts; docs/privacy.md, "Dead letters"), and `redacted` counts them.
-- The entry is then deleted from the jobs stream (XDEL): the dead letter
-- is its only copy, so the unredacted text is not kept. Returns the dead
-- letter's id.
local MAX_FIELDS = 1000
local REDACTED = '[redacted]'

local function set_of(ranges, chars)
  local t = {}
  for i = 1, #ranges, 2 do
    for c = string.byte(ranges, i), string.byte(ranges, i + 1) do t[c] = true end
  end
  for i = 1, #chars do t[string.byte(chars, i)] = true end
  return t
end
local DIGIT = set_of('09', '')
local WORD = set_of('09AZaz', '_')                -- letters, digits, _
local LOCAL = set_of('09AZaz', '._%+-')           -- an email's local part
local DOMAIN = set_of('09AZaz', '.-')             -- an email's domain
local INTL_SEP = set_of('', ' -.()/')             -- inside +44 (0)20 7946-0018
local NATL_SEP = set_of('', ' -()')               -- inside (020) 7946 0018
local NATL_SPACE = set_of('', ' ()')
local NOT_BEFORE_NATL = set_of('09AZaz', '_:.+/-') -- 1.020 7946 0018 is not a number
local NOT_AFTER = set_of('09AZaz', '_:/')

-- True when byte i of s is the letter of a JSON/C backslash escape (\n,
-- \t, \u...): the text before it ends there.
local function escaped(s, i)
  local n, j = 0, i - 1
  while j >= 1 and string.byte(s, j) == 92 do
    n, j = n + 1, j - 1
  end
  return n % 2 == 1
end

-- A word boundary before byte i: none when byte i-1 is in `notset` (and
-- not itself the letter of an escape).
local function boundary_before(s, i, notset)
  if i == 1 then return true end
  return not notset[string.byte(s, i - 1)] or escaped(s, i - 1)
end

local function boundary_after(s, i)
  local c = string.byte(s, i + 1)
  if c == nil then return true end
  if c == 46 then return not DIGIT[string.byte(s, i + 2)] end -- a full stop, not 0018.5
  return not NOT_AFTER[c]
end

-- The spans {first, last} of s that are addresses:
-- * an email: 1+ of A-Z a-z 0-9 . _ % + - (leading dots dropped), '@',
--   1+ of A-Z a-z 0-9 . - (trailing dots and dashes dropped);
-- * an international phone number: '+' (not after a letter, digit or _),
--   a digit, then digits and the separators space - . ( ) /, at least 7
--   digits, up to the last digit;
-- * a national phone number: '0' or '(' (not after a letter, digit,
--   _ : . + / -), then digits and the separators space - ( ), at least 9
--   digits in at least 2 groups, at least one separator a space or a
--   parenthesis, and not followed by a letter, digit, _ : / or '.'+digit.
-- A herald id (A-Z a-z 0-9 . _ : -) is never one, so inline recipient ids
-- are kept. Neither are numbers without a space or a parenthesis
-- (0201234567, 555-123-4567, timestamps, dates), national numbers that do
-- not start with 0 or '(' (415 555 0100), nor escaped forms (\u0040).
local function spans_of(s)
  local spans, n = {}, #s
  local at = 0
  while true do
    at = string.find(s, '@', at + 1, true)
    if not at then break end
    local a, b = at, at
    while a > 1 and LOCAL[string.byte(s, a - 1)] do a = a - 1 end
    if a < at and escaped(s, a) then
      a = a + (string.byte(s, a) == 117 and 5 or 1) -- \uXXXX or \n: not the address's
    end
    while a < at and string.byte(s, a) == 46 do a = a + 1 end
    while b < n and DOMAIN[string.byte(s, b + 1)] do b = b + 1 end
    while b > at and (string.byte(s, b) == 46 or string.byte(s, b) == 45) do b = b - 1 end
    if a < at and b > at then
      spans[#spans + 1] = {a, b}
      at = b
    end
  end
  local i = 0
  while true do
    i = string.find(s, '+', i + 1, true)
    if not i then break end
    if DIGIT[string.byte(s, i + 1)] and boundary_before(s, i, WORD) then
      local j, last, digits = i + 1, i, 0
      while j <= n do
        local c = string.byte(s, j)
        if DIGIT[c] then
          digits, last = digits + 1, j
        elseif not INTL_SEP[c] then
          break
        end
        j = j + 1
      end
      if digits >= 7 then
        spans[#spans + 1] = {i, last}
        i = last
      end
    end
  end
  i = 1
  while true do
    local a = string.find(s, '[0%(]', i)
    if not a then break end
    local j, last, digits, groups, spaced, gap, indigit = a, nil, 0, 0, false, false, false
    while j <= n do
      local c = string.byte(s, j)
      if DIGIT[c] then
        digits, last = digits + 1, j
        if not indigit then groups = groups + 1 end
        if gap then spaced = true end
        indigit = true
      elseif NATL_SEP[c] then
        if NATL_SPACE[c] then gap = true end
        indigit = false
      else
        break
      end
      j = j + 1
    end
    if last and digits >= 9 and groups >= 2 and spaced and boundary_before(s, a, NOT_BEFORE_NATL) and
        boundary_after(s, last) then
      spans[#spans + 1] = {a, last}
    end
    i = j + 1
  end
  return spans
end

-- s with every address replaced by REDACTED, and how many there were.
local function redact(s)
  local spans = spans_of(s)
  if #spans == 0 then return s, 0 end
  table.sort(spans, function(x, y) return x[1] < y[1] end)
  local out, pos, count = {}, 1, 0
  for _, sp in ipairs(spans) do
    if sp[2] >= pos then -- overlapping spans: one redaction
      local first = sp[1] < pos and pos or sp[1]
      if first == sp[1] then
        out[#out + 1] = string.sub(s, pos, first - 1)
        out[#out + 1] = REDACTED
        count = count + 1
      end
      pos = sp[2] + 1
    end
  end
  out[#out + 1] = string.sub(s, pos)
  return table.concat(out), count
end

local total = 0
local function clean(s)
  local r, c = redact(s)
  total = total + c
  return r
end

local args = {'error', clean(ARGV[3]), 'entry', clean(ARGV[4]), 'job_entry', ARGV[2]}
local got = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if got[1] then
  local f, copied, omitted = got[1][2], 0, 0
  for i = 1, #f, 2 do
    if f[i] ~= 'job' then
      if copied < MAX_FIELDS then
        args[#args + 1] = 'field:' .. clean(f[i])
        args[#args + 1] = clean(f[i + 1])
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
if total > 0 then
  args[#args + 1] = 'redacted'
  args[#args + 1] = tostring(total)
end
local id = redis.call('XADD', KEYS[2], '*', unpack(args))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return id
