-- increment: Better Auth 1.7's `increment(key, ttl)`, a fixed-window counter.
-- KEYS[1]  the physical key
-- ARGV[1]  the TTL in whole seconds (>= 1), applied only when INCR creates the key
-- Reply    the new value (integer). INCR fails the script on a value that is not an
--          integer ("ERR value is not an integer or out of range"), on another type
--          (WRONGTYPE) and on overflow; nothing is written then.
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return n
