-- session_get_many: read several session hashes at once.
-- KEYS     session keys, all in one hash slot (the caller groups them by slot)
-- Reply    for each key, in order, [user_id, expires_at, value] (nils when absent)
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HMGET', key, 'user_id', 'expires_at', 'value')
end
return out
