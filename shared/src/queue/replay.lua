-- Make a replayed job (dead, or failed and waiting for its retry) ready now.
-- KEYS[1] fresh (list), KEYS[2] delayed (zset), KEYS[3] known (hash job id -> owner)
-- ARGV[1] ready prefix, ARGV[2] job id, ARGV[3] its owner.
-- Waiting for a retry: it moves from delayed to ready. Unknown to Redis (dead jobs leave it):
-- it is pushed. Already ready or held by a worker: nothing to do.
-- Returns 1 when the job was made ready, 0 otherwise.
local id = ARGV[2]
if redis.call('ZREM', KEYS[2], id) == 1 or redis.call('HSETNX', KEYS[3], id, ARGV[3]) == 1 then
    ready_append(ARGV[1], KEYS[1], clinic_of(ARGV[3]), id)
    return 1
end
return 0
