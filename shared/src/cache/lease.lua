-- Cache miss: return the value if it exists, else hand out a fill lease to one caller.
-- KEYS[1] value key, KEYS[2] its lease key (same hash tag, same slot)
-- ARGV[1] lease token, ARGV[2] lease lifetime in ms, ARGV[3] '1' to ignore the current value
-- (it did not decode and must be replaced)
-- Returns {1, value} on a hit, {2, false} when this caller holds the lease, {3, false} when
-- another caller is filling the key.
if ARGV[3] ~= '1' then
    local value = redis.call('GET', KEYS[1])
    if value then
        return {1, value}
    end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return {2, false}
end
return {3, false}
