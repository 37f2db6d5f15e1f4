-- rate_limit_fixed_window: consume (or peek at) units of a fixed-window bucket.
-- KEYS[1]  the bucket: a string holding the count, PX window set when the window opens
-- ARGV[1]  now in ms since the epoch, or '-1' to read the server's clock (TIME)
--          (unused here: the window is the key's own expiry)
-- ARGV[2]  window in ms
-- ARGV[3]  max units per window
-- ARGV[4]  units asked for
-- ARGV[5]  '1' consume, '0' peek (decide, write nothing)
-- Reply    {allowed 0|1, remaining, retry_after_ms, reset_after_ms}
-- Boundary: a window opened at t0 counts requests at t0..t0+window inclusive (Redis keeps
-- a key through the millisecond it expires at); the bucket is empty from t0+window+1.
-- A denial writes nothing, except a TTL for a counter found without one.
-- A value that is not a count as stored_int reads it (INCRBY would refuse '007', '+5',
-- ' 5'; '-5' is no count of ours) is not a bucket: it reads as empty and the next
-- admission replaces it with SET ... PX, so INCRBY only ever sees a valid count and no
-- error can come after a write.
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

local key = KEYS[1]
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local commit = ARGV[5] == '1'

local count = nil
local pttl = -2
if redis.call('TYPE', key).ok == 'string' then
  count = stored_int(redis.call('GET', key))
  if count ~= nil then
    pttl = redis.call('PTTL', key)
  end
end

local used, life = 0, window
if count ~= nil then
  used = count
  if pttl >= 0 then
    life = pttl
  end
end
local allowed = used + cost <= limit
if allowed and commit then
  if count == nil then
    -- SET replaces whatever another layout left under the key.
    redis.call('SET', key, int(cost), 'PX', int(window))
  else
    redis.call('INCRBY', key, int(cost))
    if pttl < 0 then
      redis.call('PEXPIRE', key, int(window))
    end
  end
  used = used + cost
elseif count ~= nil and pttl < 0 then
  redis.call('PEXPIRE', key, int(window))
end

local remaining = limit - used
if remaining < 0 then
  remaining = 0
end
local reset = 0
if used > 0 then
  reset = life + 1
end
local retry = 0
if not allowed then
  retry = life + 1
end
return {allowed and 1 or 0, remaining, retry, reset}
