-- The durable job queue (shared::queue): what the worker, the outbox sweep and the status views
-- need beyond the `jobs` table of 20261123000003.

-- Every hand-over of a job to a worker (never reset, unlike `attempts`, which a replay sets back
-- to zero). An outcome is recorded only if `deliveries` still equals the delivery it came
-- from, so a worker whose lease expired (frozen or slow) and whose job was delivered again can
-- never overwrite the newer delivery's outcome.
ALTER TABLE jobs ADD COLUMN deliveries integer NOT NULL DEFAULT 0 CHECK (deliveries >= 0);
-- Times an admin replayed the job from the dead-letter queue (or ahead of its retry).
ALTER TABLE jobs ADD COLUMN replays integer NOT NULL DEFAULT 0 CHECK (replays >= 0);

-- The worker connects as pulso_system and claims or records a batch of jobs of many clinics in
-- one statement; the sweep reads every clinic's unfinished jobs. Permissive, so it adds (OR) to
-- jobs_tenant for this role only. Handlers still do their clinic's work in tenant transactions.
CREATE POLICY jobs_system ON jobs FOR ALL TO pulso_system
    USING (true)
    WITH CHECK (true);

-- Platform admins (a transaction that set app.platform_admin after the server verified the
-- claim, shared::db::begin_platform) read every clinic's jobs: the dead-letter queue and the
-- queue figures across the platform. Read only: replays stay within the caller's clinic.
CREATE POLICY jobs_platform_read ON jobs FOR SELECT
    USING (app_platform_admin());

-- The outbox sweep: unfinished jobs untouched for a while, oldest first (keyset on
-- (updated_at, id)). Partial, so finished jobs (nearly all of them) cost it nothing, and the
-- platform queue figures count queued, running and failed jobs from it.
CREATE INDEX jobs_unfinished_idx ON jobs (updated_at, id)
    WHERE status IN ('queued', 'running', 'failed');

-- The platform-wide dead-letter queue, newest first (a clinic's own uses
-- jobs_clinic_status_idx on (clinic_id, status, created_at)).
CREATE INDEX jobs_dead_idx ON jobs (created_at DESC, id DESC)
    WHERE status = 'dead';

-- jobs_undispatched_idx indexed queued jobs by run_at for a sweep that would mark jobs
-- dispatched in PostgreSQL; this queue asks Redis instead (its `known` set), so the push after
-- commit costs no write. Every job is inserted queued with dispatched_at NULL, so that index
-- was maintained on every enqueue for nothing.
DROP INDEX jobs_undispatched_idx;
