-- session_delete: delete a session and say whose it was.
-- KEYS[1]  the session key
-- Reply    the user id of the deleted session, or nil when there was none
local owner = redis.call('HGET', KEYS[1], 'user_id')
if owner then
  redis.call('DEL', KEYS[1])
end
return owner
