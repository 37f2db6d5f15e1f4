-- lock_acquire: take the lock KEYS[1] for the owner ARGV[1] unless someone holds it, and
-- draw the next fencing token from the counter KEYS[2].
-- KEYS[1]  the lock key      {prefix}lock:{<name>}
-- KEYS[2]  the fence counter {prefix}lock:{<name>}:fence (same hash slot: the {<name>} tag)
-- ARGV[1]  the new owner's random token
-- ARGV[2]  the lock's time to live, in milliseconds (at least 1)
-- Reply    {1, fence} when acquired; {0, pttl} when held (pttl -1: held without expiry)
-- The counter is incremented before the lock is written: if INCR fails (the counter key
-- holds something else), the script stops with nothing written. It never expires, so
-- tokens keep increasing after the lock itself expires.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, fence}
