-- Store a loaded value only if the caller's lease still stands. An invalidation deletes the
-- lease, so a reader that loaded before a write can never store its stale copy afterwards.
-- KEYS[1] value key, KEYS[2] lease key; ARGV[1] token, ARGV[2] value, ARGV[3] TTL in ms
-- Returns 1 when stored, 0 when the lease was lost (invalidated or expired).
if redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    redis.call('DEL', KEYS[2])
    return 1
end
return 0
