-- session_refresh: move an existing session's expiry (and maybe replace its value).
-- Never creates: a session that is gone stays gone.
-- KEYS[1]  the session key
-- ARGV[1]  the user id the session must belong to
-- ARGV[2]  the new expires_at, ms since the epoch
-- ARGV[3]  '1' = replace the value with ARGV[4]; '0' = keep it
-- ARGV[4]  the new value (ignored when ARGV[3] is '0')
-- Reply    1 refreshed, 0 absent or another user's (nothing written),
--          -1 the new expires_at is not after the server's clock: the session ended (DEL)
if redis.call('HGET', KEYS[1], 'user_id') ~= ARGV[1] then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) <= now then
  redis.call('DEL', KEYS[1])
  return -1
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'expires_at', ARGV[2], 'value', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'expires_at', ARGV[2])
end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
