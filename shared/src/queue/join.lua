-- A drain joins the drains alive, or renews its presence (`presence.rs`).
-- KEYS[1] drains (zset), KEYS[2] waking; ARGV[1] drain id, ARGV[2] now (Unix ms), ARGV[3] how long
-- its presence lasts unless renewed (ms), ARGV[4] the most drains alive it may join (0: no limit),
-- ARGV[5] the wake token it was invoked with ('' for none).
-- Returns 1 when it is in (joined or renewed), 0 when enough drains are alive without it.
local now = tonumber(ARGV[2])
if ARGV[5] ~= '' and redis.call('GET', KEYS[2]) == ARGV[5] then
    -- The wake arrived: another may be sent.
    redis.call('DEL', KEYS[2])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[4])
if limit > 0 and not redis.call('ZSCORE', KEYS[1], ARGV[1])
    and redis.call('ZCARD', KEYS[1]) >= limit then
    return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
