-- Read a generation counter, creating it with a random value when it is missing (first use,
-- a Redis restart or an eviction). Random, not 0: a counter that vanished and came back must
-- never match the generation recorded in a value written before an invalidation.
-- KEYS[1] generation key; ARGV[1] a fresh random generation. Returns the current generation.
local current = redis.call('GET', KEYS[1])
if current then
    return current
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
