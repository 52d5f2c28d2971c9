-- Store a loaded value only if the caller's lease still stands. An invalidation deletes the
-- lease, so a reader that loaded before a write can never store its stale copy afterwards.
-- The value itself came in the same pipeline by a plain SET, with its TTL, under a key of its
-- own in the same slot (KEYS[3]); here it is renamed into place (RENAME keeps its TTL) or
-- dropped. Passed to the script instead, a large value would be copied into Lua and out again.
-- KEYS[1] value key, KEYS[2] lease key, KEYS[3] the staged value; ARGV[1] token
-- Returns 1 when stored, 0 when the lease was lost (invalidated or expired) or nothing was
-- staged.
if redis.call('EXISTS', KEYS[3]) == 0 then
    return 0
end
if redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('RENAME', KEYS[3], KEYS[1])
    redis.call('DEL', KEYS[2])
    return 1
end
redis.call('DEL', KEYS[3])
return 0
