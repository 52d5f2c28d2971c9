-- Phone numbers stored before they were read in E.164 (migration 31, `shared::contact`) are
-- rewritten by the worker, since SQL cannot read a number with libphonenumber's metadata: one
-- `patients.phones` job for each clinic that has any (`shared::patients::normalise_phones`),
-- staged here as any job is staged, queued and not yet in Redis, so the queue's maintenance
-- pushes it within a minute of the deploy. Its key makes it once per clinic.
-- The migrating owner is subject to FORCE ROW LEVEL SECURITY like everyone: lifted for this one
-- statement and restored before the migration's transaction commits.
ALTER TABLE patients NO FORCE ROW LEVEL SECURITY;
ALTER TABLE jobs NO FORCE ROW LEVEL SECURITY;
INSERT INTO jobs (clinic_id, kind, payload, idempotency_key, readers)
SELECT DISTINCT clinic_id, 'patients.phones', '{}'::jsonb, 'patients.phones:e164',
       '{admin}'::user_role[]
  FROM patients
 WHERE phone !~ '^\+[1-9][0-9]{5,14}$'
ON CONFLICT (clinic_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
ALTER TABLE patients FORCE ROW LEVEL SECURITY;
