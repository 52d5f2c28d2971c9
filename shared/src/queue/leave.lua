-- A drain leaves the drains alive (`presence.rs`). Work with no other drain alive would wait for
-- the next tick: a drain leaving because it is idle stays instead (the work came as it left), one
-- leaving at its deadline hands over to a new one. An enqueue checks for a drain in the step of
-- its push (`enqueue.lua`), so it sees either this drain alive or this script sees its job: no
-- job falls between.
-- KEYS[1] drains (zset), KEYS[2] waking, KEYS[3] fresh, KEYS[4] active, KEYS[5] delayed;
-- ARGV[1] drain id, ARGV[2] now (Unix ms), ARGV[3] how long a presence lasts (ms), ARGV[4] why:
-- 'idle', 'deadline' or 'quit' (leaves whatever there is), ARGV[5] retries due by this time (Unix
-- ms) count as work, ARGV[6] a new wake token, ARGV[7] how long a wake may take to arrive (ms).
-- Returns 'gone', 'stay' (back in) or 'wake' (the caller invokes a worker with the token).
local now = tonumber(ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[4] == 'quit' then
    return 'gone'
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) > 0 then
    return 'gone'
end
local work = redis.call('LLEN', KEYS[3]) + redis.call('LLEN', KEYS[4]) > 0
    or redis.call('ZCOUNT', KEYS[5], '-inf', ARGV[5]) > 0
if not work then
    return 'gone'
end
if ARGV[4] == 'idle' then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
    return 'stay'
end
if redis.call('SET', KEYS[2], ARGV[6], 'NX', 'PX', ARGV[7]) then
    return 'wake'
end
return 'gone'
