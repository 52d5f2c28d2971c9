-- Take up to ARGV[1] jobs from the head of the ready list and lease them: each moves to the
-- processing set, scored by its lease deadline, in the same step, so a worker that dies right
-- after this loses nothing (the reaper requeues expired leases).
-- KEYS[1] ready (list), KEYS[2] processing (zset)
-- ARGV[1] most jobs to take, ARGV[2] lease deadline (Unix ms)
-- Returns the job ids taken, oldest first.
local ids = redis.call('LPOP', KEYS[1], ARGV[1])
if not ids then
    return {}
end
for _, id in ipairs(ids) do
    redis.call('ZADD', KEYS[2], ARGV[2], id)
end
return ids
