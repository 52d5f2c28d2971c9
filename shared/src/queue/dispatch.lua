-- Put jobs on the queue unless Redis already has them: the push after an enqueue commits, the
-- sweep's re-push of jobs Redis lost, and a replay may all push the same job, and it must be
-- waiting in exactly one place.
-- KEYS[1] fresh (list), KEYS[2] delayed (zset), KEYS[3] known (hash job id -> owner)
-- ARGV[1] ready prefix, then triples of (job id, owner, due time in Unix ms); a due time of 0
-- means "ready now".
-- Returns how many jobs were added.
local added = 0
for i = 2, #ARGV, 3 do
    local id = ARGV[i]
    local owner = ARGV[i + 1]
    local due = tonumber(ARGV[i + 2])
    if redis.call('HSETNX', KEYS[3], id, owner) == 1 then
        if due > 0 then
            redis.call('ZADD', KEYS[2], due, id)
        else
            ready_append(ARGV[1], KEYS[1], clinic_of(owner), id)
        end
        added = added + 1
    end
end
return added
