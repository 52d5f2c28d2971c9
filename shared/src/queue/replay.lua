-- Make a replayed job (dead, or failed and waiting for its retry) ready now.
-- KEYS[1] ready (list), KEYS[2] delayed (zset), KEYS[3] known (set); ARGV[1] job id.
-- Waiting for a retry: it moves from delayed to ready. Unknown to Redis (dead jobs leave it):
-- it is pushed. Already ready or held by a worker: nothing to do.
-- Returns 1 when the job was made ready, 0 otherwise.
local id = ARGV[1]
if redis.call('ZREM', KEYS[2], id) == 1 or redis.call('SADD', KEYS[3], id) == 1 then
    redis.call('RPUSH', KEYS[1], id)
    return 1
end
return 0
