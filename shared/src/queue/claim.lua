-- Take up to ARGV[1] ready jobs that fit in the worker's room, one per clinic per turn, and
-- lease them: each moves to the processing set, scored by its lease deadline, in the same step,
-- so a worker that dies right after this loses nothing (the reaper requeues expired leases).
-- Turns go first to the `fresh` clinics, in order of arrival (a clinic that had nothing waiting
-- is served at the next claim, however long the others' backlogs: the "new flows first" of fair
-- queueing), then round the `active` ring: the clinic at its head moves to its tail and gives its
-- oldest job. A clinic with a thousand jobs waiting gets one turn per round like one with one.
-- A clinic is passed over when its oldest job does not fit in the memory left, or when it runs
-- its whole share of the worker's slots already (a passed fresh clinic joins the ring): light
-- jobs go on while a heavy one waits for room, and a clinic's backlog never fills every slot.
-- The claim ends when it is full, the memory is, or every clinic was passed over since the
-- last job taken.
-- KEYS[1] fresh (list), KEYS[2] active (list), KEYS[3] processing (zset), KEYS[4] known (hash)
-- ARGV[1] most jobs to take, ARGV[2] lease deadline (Unix ms), ARGV[3] ready prefix,
-- ARGV[4] memory free now (MiB), ARGV[5] the worker's whole budget (MiB: a heavier job counts
-- as this much, and runs alone), ARGV[6] a clinic's share of the slots, then pairs of (clinic
-- id, jobs it runs in the worker now).
-- Returns {1 when jobs were passed over for lack of room else 0, 1 when fresh clinics were not
-- reached else 0, {id, weight, id, weight, …}}.
local most = tonumber(ARGV[1])
local room = tonumber(ARGV[4])
local budget = tonumber(ARGV[5])
local share = tonumber(ARGV[6])
local allowed = {}
for i = 7, #ARGV, 2 do
    allowed[ARGV[i]] = share - tonumber(ARGV[i + 1])
end
local left_for_room = 0
local taken = {}
local count = 0

-- 'taken', 'passed' (no room for the clinic's oldest job now) or 'empty'.
local function take(clinic)
    local ready = ARGV[3] .. clinic
    local id = redis.call('LINDEX', ready, 0)
    if not id then
        return 'empty'
    end
    local owner = redis.call('HGET', KEYS[4], id)
    local weight = math.min(owner and weight_of(owner) or 1, budget)
    local left = allowed[clinic] or share
    if weight > room or left <= 0 then
        left_for_room = 1
        return 'passed'
    end
    redis.call('LPOP', ready)
    redis.call('ZADD', KEYS[3], ARGV[2], id)
    room = room - weight
    allowed[clinic] = left - 1
    taken[#taken + 1] = id
    taken[#taken + 1] = weight
    count = count + 1
    return 'taken'
end

local function has_more(clinic)
    return redis.call('LLEN', ARGV[3] .. clinic) > 0
end

while count < most and room > 0 do
    local clinic = redis.call('LPOP', KEYS[1])
    if not clinic then
        break
    end
    take(clinic)
    if has_more(clinic) then
        redis.call('RPUSH', KEYS[2], clinic)
    end
end

local passed = 0
while count < most and room > 0 do
    local clinics = redis.call('LLEN', KEYS[2])
    if clinics == 0 or passed >= clinics then
        break
    end
    local clinic = redis.call('LMOVE', KEYS[2], KEYS[2], 'LEFT', 'RIGHT')
    if take(clinic) == 'passed' then
        passed = passed + 1
    else
        passed = 0
        if not has_more(clinic) then
            -- The clinic just moved to the ring's tail: it leaves with its last job.
            redis.call('RPOP', KEYS[2])
        end
    end
end

local fresh_left = redis.call('LLEN', KEYS[1]) > 0 and 1 or 0
if room <= 0 and (fresh_left == 1 or redis.call('LLEN', KEYS[2]) > 0) then
    left_for_room = 1
end
return {left_for_room, fresh_left, taken}
