-- Which roles of the job's clinic may read a job through `GET /jobs/{id}`, copied from its kind
-- when it is staged (`JobKind::readable_by`); NULL means every member of the clinic. A result
-- can carry what only some roles may see (an insurance report is the admins' and the desk's),
-- and the job row outlives any change to the kind's code, so the row says it.
ALTER TABLE jobs ADD COLUMN readers user_role[]
    CONSTRAINT jobs_readers_not_empty CHECK (readers IS NULL OR cardinality(readers) >= 1);

-- Jobs staged before the column existed.
UPDATE jobs SET readers = '{admin,receptionist}' WHERE kind = 'report.insurance';
