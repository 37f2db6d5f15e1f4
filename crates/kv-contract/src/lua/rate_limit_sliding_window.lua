-- rate_limit_sliding_window: consume (or peek at) units of a sliding-window bucket, the
-- two-bucket weighted approximation.
-- KEYS[1]  the bucket: a hash {start (ms, a multiple of window), current, previous}
-- ARGV[1]  now in ms since the epoch, or '-1' to read the server's clock (TIME)
-- ARGV[2]  window in ms
-- ARGV[3]  max units per window
-- ARGV[4]  units asked for
-- ARGV[5]  '1' consume, '0' peek (decide, write nothing)
-- Reply    {allowed 0|1, remaining, retry_after_ms, reset_after_ms}
-- Windows are [k*window, (k+1)*window). At e ms into the current window the estimate is
-- previous*(window-e)/window + current; cost units fit when estimate + cost <= max,
-- computed multiplied by window so it stays in exact integers. A stored window later
-- than now's (a caller clock behind another's) is used as is with e = 0.
-- An admitted request sets PX (2*window - e): the state matters until the end of the
-- next window. A denial writes nothing, except a TTL for a bucket found without one.
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

local key = KEYS[1]
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local w = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local commit = ARGV[5] == '1'

local kind = redis.call('TYPE', key).ok
local s_start, s_cur, s_prev = nil, nil, nil
if kind == 'hash' then
  local v = redis.call('HMGET', key, 'start', 'current', 'previous')
  s_start, s_cur, s_prev = stored_int(v[1]), stored_int(v[2]), stored_int(v[3])
  if s_start == nil or s_cur == nil or s_prev == nil then
    s_start = nil
  end
end
local foreign = kind ~= 'none' and s_start == nil
local pttl = -2
if s_start ~= nil then
  pttl = redis.call('PTTL', key)
end

local cur_start = idiv(now, w) * w
local start, cur, prev = cur_start, 0, 0
if s_start ~= nil then
  if s_start >= cur_start then
    start, cur, prev = s_start, s_cur, s_prev
  elseif s_start + w == cur_start then
    prev = s_cur
  end
end
-- Counts above max only appear if max was lowered; clamping keeps products bounded.
if cur > limit then
  cur = limit
end
if prev > limit then
  prev = limit
end
local elapsed = now - start
if elapsed < 0 then
  elapsed = 0
end
local weight = w - elapsed
local weighted = prev * weight + cur * w
local allowed = weighted + cost * w <= limit * w
local cur_after = cur
if allowed and commit then
  cur_after = cur + cost
  if foreign then
    redis.call('DEL', key)
  end
  redis.call('HSET', key, 'start', int(start), 'current', int(cur_after), 'previous', int(prev))
  redis.call('PEXPIRE', key, int(2 * w - elapsed))
elseif s_start ~= nil and pttl == -1 then
  local ttl = s_start + 2 * w - now
  if ttl < 1 then
    ttl = 1
  end
  redis.call('PEXPIRE', key, int(ttl))
end

local weighted_after = prev * weight + cur_after * w
local remaining = 0
if limit * w > weighted_after then
  remaining = idiv(limit * w - weighted_after, w)
end
local retry = 0
if not allowed then
  local room = limit - cost
  if cur <= room then
    retry = weight - idiv((room - cur) * w, prev)
  else
    retry = weight + w - idiv(room * w, cur)
  end
end
local reset = 0
if cur_after > 0 then
  reset = 2 * w - elapsed
elseif prev > 0 then
  reset = weight
end
return {allowed and 1 or 0, remaining, retry, reset}
