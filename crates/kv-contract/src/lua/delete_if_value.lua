-- delete_if_value: delete KEYS[1] only if it holds exactly ARGV[1].
-- KEYS[1]  the physical key
-- ARGV[1]  the expected value
-- Reply    1 when the key held the value and was deleted, 0 otherwise
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
