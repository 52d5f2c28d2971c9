-- Take up to ARGV[1] ready jobs, one per clinic per turn, and lease them: each moves to the
-- processing set, scored by its lease deadline, in the same step, so a worker that dies right
-- after this loses nothing (the reaper requeues expired leases).
-- Turns go first to the `fresh` clinics, in order of arrival (a clinic that had nothing waiting
-- is served at the next claim, however long the others' backlogs: the "new flows first" of fair
-- queueing), then round the `active` ring: the clinic at its head moves to its tail and gives its
-- oldest job. A clinic with a thousand jobs waiting gets one turn per round like one with one.
-- KEYS[1] fresh (list of clinic ids), KEYS[2] active (list of clinic ids), KEYS[3] processing
-- ARGV[1] most jobs to take, ARGV[2] lease deadline (Unix ms), ARGV[3] ready prefix
-- Returns the job ids taken, in the order taken.
local most = tonumber(ARGV[1])
local taken = {}
while #taken < most do
    local clinic = redis.call('LPOP', KEYS[1])
    local from_fresh = clinic
    if not clinic then
        clinic = redis.call('LMOVE', KEYS[2], KEYS[2], 'LEFT', 'RIGHT')
        if not clinic then
            break
        end
    end
    local ready = ARGV[3] .. clinic
    local id = redis.call('LPOP', ready)
    if id then
        redis.call('ZADD', KEYS[3], ARGV[2], id)
        taken[#taken + 1] = id
    end
    local left = redis.call('LLEN', ready)
    if from_fresh and left > 0 then
        redis.call('RPUSH', KEYS[2], clinic)
    elseif not from_fresh and left == 0 then
        -- The clinic just moved to the ring's tail: it leaves with its last job.
        redis.call('RPOP', KEYS[2])
    end
end
return taken
