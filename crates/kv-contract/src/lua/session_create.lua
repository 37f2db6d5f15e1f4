-- session_create: write one session hash, unless its token is another user's session.
-- KEYS[1]  the session key, {prefix}{session}:{id}
-- ARGV[1]  the user id
-- ARGV[2]  expires_at, ms since the epoch
-- ARGV[3]  the value
-- Reply    1 written (hash fields user_id, expires_at, value; PEXPIREAT expires_at),
--          0 the key holds another user's session (nothing written),
--          -1 expires_at is not after the server's clock (nothing written)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) <= now then
  return -1
end
local owner = redis.call('HGET', KEYS[1], 'user_id')
if owner and owner ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'expires_at', ARGV[2], 'value', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
