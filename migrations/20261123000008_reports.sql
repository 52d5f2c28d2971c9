-- Insurance reports: one report per job, and a ready report always has its PDF.

-- A request with an Idempotency-Key that was already used answers with the report of the job
-- that key created: the lookup is by (clinic, job), and one job builds exactly one report.
CREATE UNIQUE INDEX reports_clinic_job_key ON reports (clinic_id, job_id) WHERE job_id IS NOT NULL;

-- The download serves `pdf` whenever the status says ready; the schema makes sure it can.
ALTER TABLE reports
    ADD CONSTRAINT reports_ready_has_pdf CHECK (status <> 'ready' OR pdf IS NOT NULL);
