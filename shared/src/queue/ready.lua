-- Prepended to every script that moves jobs to or from the ready lists. Each clinic has its own
-- ready list (the ready prefix followed by the clinic id). A clinic whose list is not empty is
-- in exactly one of two lists of clinics: `fresh`, the clinics that had nothing ready when their
-- job came, in order of arrival; or `active`, the ring the claims go round. Every script keeps
-- the lists and the rings in step. `known` maps each job id to its owner, `<clinic id>:<peak
-- MiB>`: which list it belongs in, and what the claim weighs it by. The ready lists' names are
-- built from the prefix rather than passed as KEYS: they carry the `{jobs}` hash tag of every
-- declared key, so they are on the same slot.

local function clinic_of(owner)
    return string.match(owner, '^[^:]+')
end

local function weight_of(owner)
    return math.max(1, tonumber(string.match(owner, ':(%d+)$')) or 1)
end

-- Appends `id` to `clinic`'s ready list; a clinic that had nothing ready joins `fresh`.
local function ready_append(prefix, fresh, clinic, id)
    if redis.call('RPUSH', prefix .. clinic, id) == 1 then
        redis.call('RPUSH', fresh, clinic)
    end
end
