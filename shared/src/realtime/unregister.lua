-- Removes one WebSocket connection from every index of its clinic, atomically.
-- KEYS[1] the connection's hash, KEYS[2] the clinic's zset of registration ends, KEYS[3..n] the
-- sets that may hold its id (the clinic's, its role's and user's, and the set a push found it
-- in: an expired hash leaves no role or user).
-- ARGV[1] connection id, ARGV[2] '1' to take it out of the registration ends too (it is closed),
-- '0' to leave it there (its registration ended but the socket may be open: it is still to be
-- closed).
-- Returns 1 when the connection was still registered, 0 when only stale set members were left.
local removed = redis.call('DEL', KEYS[1])
if ARGV[2] == '1' then
    redis.call('ZREM', KEYS[2], ARGV[1])
end
for i = 3, #KEYS do
    redis.call('SREM', KEYS[i], ARGV[1])
end
return removed
