-- session_create: write a new session hash; never overwrites one.
-- KEYS[1]  the session key, {prefix}{session}:{id}
-- ARGV[1]  the user id
-- ARGV[2]  expires_at, ms since the epoch
-- ARGV[3]  the value
-- Reply    1 written (hash fields user_id, expires_at, value; PEXPIREAT expires_at),
--          0 the key exists (nothing written),
--          -1 expires_at is not after the server's clock (nothing written)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) <= now then
  return -1
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'expires_at', ARGV[2], 'value', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
