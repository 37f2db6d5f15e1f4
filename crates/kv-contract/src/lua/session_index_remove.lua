-- session_index_remove: remove members from an index, prune, and fit its expiry.
-- KEYS[1]  the index key
-- ARGV     the session ids to remove
-- Reply    how many of them were members
-- The key then expires with its highest remaining score, or is gone when empty.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local removed = 0
-- In batches: unpack() of thousands of arguments overflows the Lua stack.
for i = 1, #ARGV, 1000 do
  removed = removed + redis.call('ZREM', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  if tonumber(last[2]) > now then
    redis.call('PEXPIREAT', KEYS[1], last[2])
  else
    redis.call('PEXPIRE', KEYS[1], 1)
  end
end
return removed
