-- compare_and_set: write KEYS[1] only if its current value is the expected one.
-- KEYS[1]  the physical key
-- ARGV[1]  '1' = expect the value ARGV[2]; '0' = expect the key to be absent
-- ARGV[2]  the expected value (ignored when ARGV[1] is '0')
-- ARGV[3]  the new value
-- ARGV[4]  expiry: '-1' none, '0' already expired (delete), otherwise milliseconds
-- Reply    1 when the condition held and the write was applied, 0 otherwise
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then
    return 0
  end
elseif current then
  return 0
end
local ttl = tonumber(ARGV[4])
if ttl == 0 then
  redis.call('DEL', KEYS[1])
elseif ttl < 0 then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
end
return 1
