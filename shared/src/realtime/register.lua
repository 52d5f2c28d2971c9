-- Registers one WebSocket connection in every index of its clinic, atomically.
-- KEYS[1] the connection's hash, KEYS[2] the clinic's set, KEYS[3] the role's set,
-- KEYS[4] the user's set, KEYS[5] the clinic's zset of registration ends (one hash tag: the
-- clinic).
-- ARGV[1] connection id, ARGV[2] clinic id, ARGV[3] user id, ARGV[4] role,
-- ARGV[5] connected_at (Unix ms), ARGV[6] since ('' when none),
-- ARGV[7] when the registration ends (Unix ms: connected_at + 2 h, or the token's expiry if
-- sooner), ARGV[8] the sets' TTL (ms), ARGV[9] the token's expiry (Unix ms, '' when unknown).
-- ARGV[10] the most live connections one user may hold: one more is refused (returns 0), unless
-- it is this connection registering again.
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 0
    and redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[10]) then
    return 0
end
redis.call('HSET', KEYS[1], 'clinic', ARGV[2], 'user', ARGV[3], 'role', ARGV[4],
    'connected_at', ARGV[5], 'since', ARGV[6], 'token_expires_at', ARGV[9])
redis.call('PEXPIREAT', KEYS[1], ARGV[7])
for i = 2, 4 do
    redis.call('SADD', KEYS[i], ARGV[1])
end
redis.call('ZADD', KEYS[5], ARGV[7], ARGV[1])
for i = 2, 5 do
    -- A set outlives each member's hash: its TTL restarts at every registration.
    redis.call('PEXPIRE', KEYS[i], ARGV[8])
end
return 1
