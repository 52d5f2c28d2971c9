-- X-rays: what the upload and the analysis job need beyond the table of 20261123000003.

-- An upload repeated with the same Idempotency-Key finds its X-ray through the job it staged;
-- one X-ray per job also keeps a replayed job from ever pointing at two images.
CREATE UNIQUE INDEX xrays_clinic_job_key ON xrays (clinic_id, job_id) WHERE job_id IS NOT NULL;

-- A patient's X-rays newest first, with the id as tie-breaker of the keyset cursor.
CREATE INDEX xrays_clinic_patient_created_idx ON xrays (clinic_id, patient_id, created_at DESC, id DESC);
DROP INDEX xrays_clinic_patient_idx;

-- PNG and JPEG are compressed already: store them out of line without TOAST's pglz attempt,
-- which would spend CPU on every upload to save nothing.
ALTER TABLE xrays ALTER COLUMN image SET STORAGE EXTERNAL;
ALTER TABLE xrays ALTER COLUMN thumbnail SET STORAGE EXTERNAL;
