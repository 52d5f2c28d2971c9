-- GCRA (the generic cell rate algorithm) over several buckets at once: a request passes only
-- when every bucket has room, and only then is each bucket charged, so a refused request
-- costs the caller nothing and one bucket never drifts from the others.
-- KEYS: one per bucket.
-- ARGV: per bucket, its emission interval and its burst tolerance, both in microseconds
--       (interval = window / quota; tolerance = window, so a full quota may come at once).
-- Each bucket keeps its theoretical arrival time (TAT, Unix µs). Time is Redis's own, so the
-- Lambda environments' clocks never disagree about it.
-- Returns {allowed (1|0), retry after µs, then per bucket: remaining, µs until it is full}.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

local count = #ARGV / 2
local buckets = {}
local allowed = 1
local retry_after = 0
for i = 1, count do
    local interval = tonumber(ARGV[2 * i - 1])
    local tolerance = tonumber(ARGV[2 * i])
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
    if tat < now then
        tat = now
    end
    local allow_at = tat + interval - tolerance
    if now < allow_at then
        allowed = 0
        retry_after = math.max(retry_after, allow_at - now)
    end
    buckets[i] = { tat = tat, interval = interval, tolerance = tolerance }
end

local reply = { allowed, retry_after }
for i = 1, count do
    local bucket = buckets[i]
    local tat = bucket.tat
    if allowed == 1 then
        tat = tat + bucket.interval
        -- The key lives exactly as long as it holds anything: an idle bucket costs no memory.
        redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
    end
    local remaining = math.floor((bucket.tolerance - (tat - now)) / bucket.interval)
    reply[#reply + 1] = math.max(remaining, 0)
    reply[#reply + 1] = tat - now
end
return reply
