-- Give back jobs a worker claimed but will not run (PostgreSQL was unreachable, or it is
-- stopping): back to the head of the ready list in their order, so they are next.
-- KEYS[1] processing (zset), KEYS[2] ready (list); ARGV the job ids, oldest first.
-- A job whose lease was already reaped is not pushed again. Returns how many went back.
local released = 0
for i = #ARGV, 1, -1 do
    if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
        redis.call('LPUSH', KEYS[2], ARGV[i])
        released = released + 1
    end
end
return released
