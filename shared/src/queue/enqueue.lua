-- An enqueue's push and its wake check in one step (one round trip on the request's path): puts
-- the jobs on the queue (`push.lua`), then, if it added any, whether to wake a worker
-- (`wakes.lua`, for one drain).
-- KEYS[1] fresh, KEYS[2] delayed, KEYS[3] known, KEYS[4] drains, KEYS[5] waking, KEYS[6] active;
-- ARGV[1] ready prefix, ARGV[2] now (Unix ms), ARGV[3] a new wake token, ARGV[4] how long a wake
-- may take to arrive (ms), then triples of (job id, owner, due time in Unix ms).
-- Returns {jobs added, 1 when the caller is to invoke the worker with the token}.
local added = push_jobs(ARGV[1], KEYS[1], KEYS[2], KEYS[3], ARGV, 5)
local wake = 0
if added > 0 then
    wake = wake_wanted(KEYS[4], KEYS[5], KEYS[1], KEYS[6], tonumber(ARGV[2]), 1, ARGV[3], ARGV[4])
end
return {added, wake}
