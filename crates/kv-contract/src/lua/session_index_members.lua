-- session_index_members: the members of an index, after pruning the expired ones.
-- KEYS[1]  the index key
-- Reply    every member scored at or above the server's clock, lowest score first
--          (ties: lowest member); members scored below it are removed (removing the
--          lowest scores leaves the key's expiry, the highest score, unchanged)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
