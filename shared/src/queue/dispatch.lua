-- Put jobs on the queue unless Redis already has them: the push after an enqueue commits, the
-- sweep's re-push of jobs Redis lost, and a replay may all push the same job, and it must be
-- waiting in exactly one place.
-- KEYS[1] ready (list), KEYS[2] delayed (zset), KEYS[3] known (set)
-- ARGV: pairs of (job id, due time in Unix ms); a due time of 0 means "ready now".
-- Returns how many jobs were added.
local added = 0
for i = 1, #ARGV, 2 do
    local id = ARGV[i]
    local due = tonumber(ARGV[i + 1])
    if redis.call('SADD', KEYS[3], id) == 1 then
        if due > 0 then
            redis.call('ZADD', KEYS[2], due, id)
        else
            redis.call('RPUSH', KEYS[1], id)
        end
        added = added + 1
    end
end
return added
