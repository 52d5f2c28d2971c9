-- Prepended to the scripts that may wake a worker (`wake.lua`, `enqueue.lua`; `presence.rs`):
-- whether to, because jobs are ready, fewer drains than `wanted` are alive, and no wake is on
-- its way already. When so, `token` becomes the wake in flight (for `lapse` ms) and the caller
-- invokes the worker with it. Returns 1 when the caller is to, else 0.
local function wake_wanted(drains, waking, fresh, active, now, wanted, token, lapse)
    if redis.call('LLEN', fresh) + redis.call('LLEN', active) == 0 then
        return 0
    end
    redis.call('ZREMRANGEBYSCORE', drains, '-inf', now)
    if redis.call('ZCARD', drains) >= wanted then
        return 0
    end
    if redis.call('SET', waking, token, 'NX', 'PX', lapse) then
        return 1
    end
    return 0
end
