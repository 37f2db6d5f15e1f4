-- lock_acquire: take the lock KEYS[1] for the owner ARGV[1] unless someone holds it, and
-- draw the next fencing token from the counter KEYS[2].
-- KEYS[1]  the lock key      {prefix}lock:{<name>}
-- KEYS[2]  the fence counter {prefix}lock:{<name>}:fence (same hash slot: the {<name>} tag)
-- ARGV[1]  the new owner's random token
-- ARGV[2]  the lock's time to live, in milliseconds (at least 1)
-- Reply    {1, fence} when acquired; {0, pttl} when held (pttl -1: held without expiry)
-- fence = max(counter + 1, floor), floor = the server's TIME in microseconds, written
-- back to the counter with SET (no expiry). The floor keeps tokens above every earlier
-- one when the counter is lost (restart without persistence, FLUSHDB, eviction, clear):
-- see docs/operations.md for the exact assumption (clock never back; under one acquire
-- per microsecond sustained). A counter that is not an integer as Redis parses one, not
-- a string, or outside Lua's exact range (|counter + 1| < 2^53) counts as lost. Nothing
-- after the first write can fail, so no lock is left written by a failed acquire.
local MAX = 9007199254740991 -- 2^53 - 1
local function counter(v)
  if type(v) ~= 'string' or #v > 17 then
    return nil
  end
  if v ~= '0' and not string.find(v, '^%-?[1-9]%d*$') then
    return nil
  end
  local n = tonumber(v)
  if n >= MAX or n < -MAX then
    return nil
  end
  return n
end

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local stored = nil
if redis.call('TYPE', KEYS[2]).ok == 'string' then
  stored = counter(redis.call('GET', KEYS[2]))
end
local t = redis.call('TIME')
local fence = tonumber(t[1]) * 1000000 + tonumber(t[2])
if stored ~= nil and stored + 1 > fence then
  fence = stored + 1
end
redis.call('SET', KEYS[2], string.format('%d', fence))
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, fence}
