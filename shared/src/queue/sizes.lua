-- How many ids each structure of the queue holds, read in one step.
-- KEYS[1] fresh (list), KEYS[2] active (list), KEYS[3] processing (zset), KEYS[4] delayed (zset),
-- KEYS[5] known (hash); ARGV[1] ready prefix.
-- Returns {ready jobs, clinics with ready jobs, processing, delayed, known}.
local ready = 0
local clinics = 0
for k = 1, 2 do
    for _, clinic in ipairs(redis.call('LRANGE', KEYS[k], 0, -1)) do
        ready = ready + redis.call('LLEN', ARGV[1] .. clinic)
        clinics = clinics + 1
    end
end
return {
    ready,
    clinics,
    redis.call('ZCARD', KEYS[3]),
    redis.call('ZCARD', KEYS[4]),
    redis.call('HLEN', KEYS[5]),
}
