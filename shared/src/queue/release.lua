-- Give back jobs a worker claimed but will not run (PostgreSQL was unreachable, or it is
-- stopping): back to the head of their clinics' ready lists in their order, and a clinic that
-- had nothing left ready to the head of `fresh`, so they are next.
-- KEYS[1] processing (zset), KEYS[2] fresh (list), KEYS[3] known (hash job id -> owner)
-- ARGV[1] ready prefix, then the job ids in the order they were claimed.
-- A job whose lease was already reaped is not pushed again. Returns how many went back.
local released = 0
for i = #ARGV, 2, -1 do
    local id = ARGV[i]
    local owner = redis.call('HGET', KEYS[3], id)
    if redis.call('ZREM', KEYS[1], id) == 1 and owner then
        local clinic = clinic_of(owner)
        if redis.call('LPUSH', ARGV[1] .. clinic, id) == 1 then
            redis.call('LPUSH', KEYS[2], clinic)
        end
        released = released + 1
    end
end
return released
