-- Move the members of a time-scored set whose time has come to the tail of their clinic's ready
-- list: the reaper (processing: expired leases of workers that died or froze) and the promotion
-- of retries (delayed: due time reached) are this one script over different keys.
-- KEYS[1] processing or delayed (zset scored by Unix ms), KEYS[2] fresh (list),
-- KEYS[3] known (hash job id -> owner)
-- ARGV[1] now (Unix ms), ARGV[2] most jobs to move, ARGV[3] ready prefix.
-- An id without an owner in `known` (only if `known` lost it: evicted, or edited by hand) is
-- dropped; the sweep pushes it again if PostgreSQL still has it unfinished.
-- Returns {ids examined (ARGV[2] of them: call again), ids moved}.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local moved = 0
for _, id in ipairs(due) do
    redis.call('ZREM', KEYS[1], id)
    local owner = redis.call('HGET', KEYS[3], id)
    if owner then
        ready_append(ARGV[3], KEYS[2], clinic_of(owner), id)
        moved = moved + 1
    end
end
return {#due, moved}
