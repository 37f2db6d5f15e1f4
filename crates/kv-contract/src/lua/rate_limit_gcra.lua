-- rate_limit_gcra: consume (or peek at) units of a GCRA bucket (generic cell rate
-- algorithm: max units per window spread evenly, bursts of up to `burst` units).
-- KEYS[1]  the bucket: a hash {tat (ms since the epoch), tat_rem (1/max ms beyond tat)}
-- ARGV[1]  now in ms since the epoch, or '-1' to read the server's clock (TIME)
-- ARGV[2]  window in ms
-- ARGV[3]  max units per window
-- ARGV[4]  units asked for
-- ARGV[5]  '1' consume, '0' peek (decide, write nothing)
-- ARGV[6]  burst (units admitted at once)
-- Reply    {allowed 0|1, remaining, retry_after_ms, reset_after_ms}
-- Time is counted in 1/max ms, so one unit's emission interval is exactly `window` of
-- them. debt = how far the theoretical arrival time (TAT) is ahead of now; cost units
-- fit when debt + cost*window <= burst*window. A TAT more than one burst ahead (a
-- caller clock behind another's) is clamped to that.
-- An admitted request sets PX ceil(debt/max): after that the bucket is full again. A
-- denial writes nothing, except a TTL for a bucket found without one.
-- A stored number: an integer as Redis parses one (no sign, no leading zero, no
-- spaces: what INCRBY accepts), non-negative, at most 15 digits; else nil.
local function stored_int(v)
  if type(v) == 'string' and (v == '0' or (#v <= 15 and string.find(v, '^[1-9]%d*$'))) then
    return tonumber(v)
  end
  return nil
end
local function int(n)
  return string.format('%d', n)
end
-- floor(a / b) for integers 0 <= a < 2^53, b > 0, corrected for double rounding.
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end
local function cdiv(a, b)
  local q = idiv(a, b)
  if q * b < a then
    q = q + 1
  end
  return q
end

local key = KEYS[1]
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local w = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local commit = ARGV[5] == '1'
local burst = tonumber(ARGV[6])

local kind = redis.call('TYPE', key).ok
local tat, rem = nil, nil
if kind == 'hash' then
  local v = redis.call('HMGET', key, 'tat', 'tat_rem')
  tat, rem = stored_int(v[1]), stored_int(v[2])
  if tat == nil or rem == nil then
    tat = nil
  end
end
local foreign = kind ~= 'none' and tat == nil
local pttl = -2
if tat ~= nil then
  pttl = redis.call('PTTL', key)
end

local cap = burst * w
local ahead_max = cdiv(cap, m) + 1
local debt = 0
if tat ~= nil and tat >= now then
  local ahead = tat - now
  if ahead > ahead_max then
    debt = ahead_max * m
  else
    if rem > m - 1 then
      rem = m - 1
    end
    debt = ahead * m + rem
  end
end
local need = debt + cost * w
local allowed = need <= cap
local debt_after = debt
if allowed and commit then
  debt_after = need
  if foreign then
    redis.call('DEL', key)
  end
  local q = idiv(need, m)
  redis.call('HSET', key, 'tat', int(now + q), 'tat_rem', int(need - q * m))
  redis.call('PEXPIRE', key, int(cdiv(need, m)))
elseif tat ~= nil and pttl == -1 then
  local ttl = cdiv(debt, m)
  if ttl < 1 then
    ttl = 1
  end
  redis.call('PEXPIRE', key, int(ttl))
end

local remaining = 0
if cap > debt_after then
  remaining = idiv(cap - debt_after, w)
end
local retry = 0
if not allowed then
  retry = cdiv(need - cap, m)
end
return {allowed and 1 or 0, remaining, retry, cdiv(debt_after, m)}
