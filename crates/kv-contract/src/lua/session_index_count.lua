-- session_index_count: how many unexpired members an index has (expired ones are pruned).
-- KEYS[1]  the index key
-- Reply    the number of members scored at or above the server's clock
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
return redis.call('ZCARD', KEYS[1])
