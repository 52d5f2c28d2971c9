-- Removes one WebSocket connection from every index of its clinic, atomically.
-- KEYS[1] the connection's hash, KEYS[2..n] the sets that may hold its id (the clinic's, its
-- role's and user's, and the set a push found it in: an expired hash leaves no role or user).
-- ARGV[1] connection id.
-- Returns 1 when the connection was still registered, 0 when only stale set members were left.
local removed = redis.call('DEL', KEYS[1])
for i = 2, #KEYS do
    redis.call('SREM', KEYS[i], ARGV[1])
end
return removed
