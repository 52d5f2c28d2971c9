-- Prepended to every script that makes a job ready. Each clinic has its own ready list (the
-- ready prefix followed by the clinic id). A clinic whose list is not empty is in exactly one
-- of two lists of clinics: `fresh`, the clinics that had nothing ready when their job came,
-- in order of arrival; or `active`, the ring the claims go round. Every script keeps the lists
-- and the rings in step. The ready lists' names are built from the prefix rather than passed
-- as KEYS: they carry the `{jobs}` hash tag of every declared key, so they are on the same slot.

-- Appends `id` to `clinic`'s ready list; a clinic that had nothing ready joins `fresh`.
local function ready_append(prefix, fresh, clinic, id)
    if redis.call('RPUSH', prefix .. clinic, id) == 1 then
        redis.call('RPUSH', fresh, clinic)
    end
end
