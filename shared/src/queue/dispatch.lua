-- Puts jobs on the queue unless Redis already has them (`push.lua`).
-- KEYS[1] fresh (list), KEYS[2] delayed (zset), KEYS[3] known (hash job id -> owner)
-- ARGV[1] ready prefix, then triples of (job id, owner, due time in Unix ms).
-- Returns how many jobs were added.
return push_jobs(ARGV[1], KEYS[1], KEYS[2], KEYS[3], ARGV, 2)
