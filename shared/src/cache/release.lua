-- Give a lease back without storing (the load failed or found nothing), so waiters need not
-- wait for it to expire. Only the holder's token releases it.
-- KEYS[1] lease key; ARGV[1] token. Returns 1 when released.
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
