-- Move the members of a time-scored set whose time has come to the tail of the ready list:
-- the reaper (processing: expired leases of workers that died or froze) and the promotion of
-- retries (delayed: due time reached) are this one script over different keys.
-- KEYS[1] processing or delayed (zset scored by Unix ms), KEYS[2] ready (list)
-- ARGV[1] now (Unix ms), ARGV[2] most jobs to move.
-- Returns the ids moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
    redis.call('ZREM', KEYS[1], id)
    redis.call('RPUSH', KEYS[2], id)
end
return due
