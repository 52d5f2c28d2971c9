-- Whether to wake a worker: jobs are ready, fewer drains than wanted are alive, and no wake is on
-- its way already (`presence.rs`).
-- KEYS[1] drains (zset), KEYS[2] waking, KEYS[3] fresh, KEYS[4] active; ARGV[1] now (Unix ms),
-- ARGV[2] drains wanted, ARGV[3] a new wake token, ARGV[4] how long a wake may take to arrive (ms).
-- Returns 1 when the caller is to invoke the worker with the token (now the wake in flight).
if redis.call('LLEN', KEYS[3]) + redis.call('LLEN', KEYS[4]) == 0 then
    return 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then
    return 1
end
return 0
