-- The free-slot search's day loader (issue 14 §6) reads every live appointment of a range of
-- clinic days: its dentist, chair and end. The indexes it had named the clinic and the start but
-- not the chair, so each of a fortnight's ~6,600 rows in the large clinic was a table fetch
-- (bitmap heap scan, 4.8 ms); this one holds all it reads, for live appointments only, and the
-- same read is an index-only scan (1.7 ms). Partial on the status, because under row-level
-- security a predicate on the enum is applied after the policy, never as an index condition,
-- while a partial index's own predicate is used. Plain CREATE INDEX: the migration runs in a
-- transaction; on a large live table it would be built CONCURRENTLY in a migration of its own.
CREATE INDEX appointments_clinic_live_idx
    ON appointments (clinic_id, starts_at) INCLUDE (dentist_id, chair_id, ends_at)
    WHERE status <> 'cancelled';
