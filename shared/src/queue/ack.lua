-- Settle a batch of jobs whose outcome PostgreSQL has recorded.
-- KEYS[1] processing (zset), KEYS[2] delayed (zset), KEYS[3] known (hash job id -> owner),
-- KEYS[4] stats (hash)
-- ARGV[1] F: jobs finished for good (succeeded, dead, or not runnable): they leave Redis.
-- ARGV[2] R: jobs to retry later: they move from processing to delayed.
-- ARGV[3..6] counters to add: processed, failed, retried, dead; ARGV[7] now (Unix seconds).
-- ARGV[8..] the F finished ids, then R pairs of (id, due time in Unix ms).
-- A retry whose lease the reaper already took back is left where it is (ready, or another
-- worker's): adding it to delayed as well would deliver it twice.
local finished = tonumber(ARGV[1])
local retries = tonumber(ARGV[2])
local i = 8
for _ = 1, finished do
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
    i = i + 1
end
for _ = 1, retries do
    if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
        redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i])
    end
    i = i + 2
end
local names = {'processed', 'failed', 'retried', 'dead'}
for n = 1, 4 do
    local count = tonumber(ARGV[2 + n])
    if count > 0 then
        redis.call('HINCRBY', KEYS[4], names[n], count)
    end
end
redis.call('HSETNX', KEYS[4], 'since', ARGV[7])
return finished + retries
