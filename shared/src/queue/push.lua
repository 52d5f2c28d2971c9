-- Prepended to the scripts that put jobs on the queue (`dispatch.lua`, `enqueue.lua`): adds jobs
-- unless Redis already has them. The push after an enqueue commits, the sweep's re-push of jobs
-- Redis lost, and a replay may all push the same job, and it must be waiting in exactly one
-- place. `args` holds, from `first` on, triples of (job id, owner, due time in Unix ms); a due
-- time of 0 means "ready now". Returns how many jobs were added.
local function push_jobs(prefix, fresh, delayed, known, args, first)
    local added = 0
    for i = first, #args, 3 do
        local id = args[i]
        local owner = args[i + 1]
        local due = tonumber(args[i + 2])
        if redis.call('HSETNX', known, id, owner) == 1 then
            if due > 0 then
                redis.call('ZADD', delayed, due, id)
            else
                ready_append(prefix, fresh, clinic_of(owner), id)
            end
            added = added + 1
        end
    end
    return added
end
