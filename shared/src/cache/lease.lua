-- Cache miss, or a value that needs recomputing: return a usable value if there is one, else
-- hand out a fill lease to exactly one caller.
-- KEYS[1] value key, KEYS[2] its lease key (same hash tag, same slot)
-- ARGV[1] lease token, ARGV[2] lease lifetime in ms,
-- ARGV[3] the value the caller already rejected ('' for none): an older format, another
--         generation, or a value past its freshness. Any other value is returned for the
--         caller to check, so waiters see a filler's result as soon as it is stored.
-- ARGV[4] '1' to ask for the lease whatever the value (a scheduled refresh)
-- Returns {1, value}, {2, false} when this caller holds the lease, {3, false} when another
-- caller holds it.
if ARGV[4] ~= '1' then
    local value = redis.call('GET', KEYS[1])
    if value and value ~= ARGV[3] then
        return {1, value}
    end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return {2, false}
end
return {3, false}
