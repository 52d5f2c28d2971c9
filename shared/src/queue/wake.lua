-- Whether to wake a worker (`wakes.lua`).
-- KEYS[1] drains (zset), KEYS[2] waking, KEYS[3] fresh, KEYS[4] active; ARGV[1] now (Unix ms),
-- ARGV[2] drains wanted, ARGV[3] a new wake token, ARGV[4] how long a wake may take to arrive (ms).
return wake_wanted(KEYS[1], KEYS[2], KEYS[3], KEYS[4], tonumber(ARGV[1]), tonumber(ARGV[2]),
    ARGV[3], ARGV[4])
