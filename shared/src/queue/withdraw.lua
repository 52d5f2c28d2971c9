-- Withdraws a wake that could not be sent, so the next check may send another (`presence.rs`).
-- KEYS[1] waking; ARGV[1] the wake's token. Only that token: a later wake's stays.
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
