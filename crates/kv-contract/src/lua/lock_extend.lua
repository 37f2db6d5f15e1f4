-- lock_extend: reset the lock's time to live, only while ARGV[1] still owns it.
-- KEYS[1]  the lock key {prefix}lock:{<name>}
-- ARGV[1]  the owner token
-- ARGV[2]  the new time to live, in milliseconds (at least 1)
-- Reply    1 when the owner still held the lock and its expiry was reset, 0 otherwise
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
