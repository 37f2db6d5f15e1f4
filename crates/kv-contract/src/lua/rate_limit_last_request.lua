-- rate_limit_last_request: consume (or peek at) units of a "last request" bucket, the
-- layout of Better Auth 1.6.x and of the earlier rustauth-redis/rustauth-fred limiter.
-- KEYS[1]  the bucket: a hash {count, last_request (ms since the epoch)}
-- ARGV[1]  now in ms since the epoch, or '-1' to read the server's clock (TIME)
-- ARGV[2]  window in ms
-- ARGV[3]  max units per window
-- ARGV[4]  units asked for
-- ARGV[5]  '1' consume, '0' peek (decide, write nothing)
-- Reply    {allowed 0|1, remaining, retry_after_ms, reset_after_ms}
-- Boundary: the count holds while now - last_request <= window (a clock behind
-- last_request counts as 0 elapsed); from last_request+window+1 the bucket is empty.
-- last_request moves only on admitted requests; an admitted request sets PX window.
-- A denial writes nothing, except a TTL for a bucket found without one.
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
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local commit = ARGV[5] == '1'

local kind = redis.call('TYPE', key).ok
local count, last = nil, nil
if kind == 'hash' then
  local v = redis.call('HMGET', key, 'count', 'last_request')
  count = stored_int(v[1])
  last = stored_int(v[2])
  if count == nil or last == nil then
    count, last = nil, nil
  end
end
local foreign = kind ~= 'none' and count == nil
local pttl = -2
if count ~= nil then
  pttl = redis.call('PTTL', key)
end

local used = 0
if count ~= nil and now - last <= window then
  used = count
end
local allowed = used + cost <= limit
local last_after = last or now
if allowed and commit then
  used = used + cost
  last_after = now
  if foreign then
    redis.call('DEL', key)
  end
  redis.call('HSET', key, 'count', int(used), 'last_request', int(now))
  redis.call('PEXPIRE', key, int(window))
elseif count ~= nil and pttl == -1 then
  local ttl = last + window - now
  if ttl < 1 then
    ttl = 1
  end
  redis.call('PEXPIRE', key, int(ttl))
end

local remaining = limit - used
if remaining < 0 then
  remaining = 0
end
local reset = 0
if used > 0 then
  reset = last_after + window + 1 - now
end
local retry = 0
if not allowed then
  retry = reset
end
return {allowed and 1 or 0, remaining, retry, reset}
