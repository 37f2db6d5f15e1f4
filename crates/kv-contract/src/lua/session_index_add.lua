-- session_index_add: add a session to its user's index, prune, and name what a cap evicts.
-- KEYS[1]  the index key, {prefix}{user_sessions}:{user_id} (a sorted set)
-- ARGV[1]  the session id (member)
-- ARGV[2]  its expires_at, ms since the epoch (score; an existing higher score is kept)
-- ARGV[3]  the per-user cap, '0' for none
-- Reply    the members to evict: the lowest scores (ties: lowest member), never ARGV[1].
--          They stay in the index: the caller deletes their sessions, then session_index_remove.
-- Members scored below the server's clock are removed; the key expires with its highest
-- score (PEXPIREAT), or is gone when empty.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local victims = {}
local cap = tonumber(ARGV[3])
if cap > 0 then
  local excess = redis.call('ZCARD', KEYS[1]) - cap
  if excess > 0 then
    for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess)) do
      if m ~= ARGV[1] and #victims < excess then
        victims[#victims + 1] = m
      end
    end
  end
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  if tonumber(last[2]) > now then
    redis.call('PEXPIREAT', KEYS[1], last[2])
  else
    redis.call('PEXPIRE', KEYS[1], 1)
  end
end
return victims
