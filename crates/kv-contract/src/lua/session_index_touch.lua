-- session_index_touch: raise a member's score for a refresh, if it is still indexed.
-- KEYS[1]  the index key
-- ARGV[1]  the session id
-- ARGV[2]  the new expires_at, ms since the epoch (the score only rises)
-- Reply    1 when the member is in the index, 0 when it is not (nothing written)
-- Members scored below the server's clock are removed first; the key expires with its
-- highest score.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', 'GT', ARGV[2], ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if tonumber(last[2]) > now then
  redis.call('PEXPIREAT', KEYS[1], last[2])
else
  redis.call('PEXPIRE', KEYS[1], 1)
end
return 1
