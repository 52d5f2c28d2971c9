-- The rest of the product's tables, so later features add behaviour, not tenancy.

-- Clinical catalogs: global rows (clinic_id NULL, shared by every clinic) and per-clinic
-- overrides or extra items with the same (kind, code).
CREATE TABLE catalog_items (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id        uuid REFERENCES clinics (id),
    kind             text NOT NULL CHECK (kind IN ('procedure', 'insurer')),
    code             text NOT NULL CHECK (code ~ '^[A-Za-z0-9._-]{1,32}$'),
    name             text CHECK (length(name) BETWEEN 1 AND 200),
    default_minutes  integer CHECK (default_minutes BETWEEN 5 AND 720),
    price_cents      bigint CHECK (price_cents >= 0),
    currency         text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    active           boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX catalog_items_global_key ON catalog_items (kind, code) WHERE clinic_id IS NULL;
CREATE UNIQUE INDEX catalog_items_clinic_key ON catalog_items (clinic_id, kind, code) WHERE clinic_id IS NOT NULL;

ALTER TABLE catalog_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE catalog_items FORCE ROW LEVEL SECURITY;
-- Everyone reads the global rows; a clinic reads and writes only its own overrides.
CREATE POLICY catalog_items_read ON catalog_items FOR SELECT
    USING (clinic_id IS NULL OR clinic_id = app_current_clinic());
CREATE POLICY catalog_items_insert ON catalog_items FOR INSERT
    WITH CHECK (clinic_id = app_current_clinic());
CREATE POLICY catalog_items_update ON catalog_items FOR UPDATE
    USING (clinic_id = app_current_clinic())
    WITH CHECK (clinic_id = app_current_clinic());
CREATE POLICY catalog_items_delete ON catalog_items FOR DELETE
    USING (clinic_id = app_current_clinic());
GRANT SELECT, INSERT, UPDATE, DELETE ON catalog_items TO pulso_app;

CREATE TYPE job_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'dead');

-- The durable half of the job queue (transactional outbox): a job exists once this row commits.
CREATE TABLE jobs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id        uuid NOT NULL REFERENCES clinics (id),
    kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]{1,63}$'),
    payload          jsonb NOT NULL DEFAULT '{}',
    status           job_status NOT NULL DEFAULT 'queued',
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 25),
    idempotency_key  text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    run_at           timestamptz NOT NULL DEFAULT now(),
    dispatched_at    timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    last_error       text CHECK (length(last_error) <= 4000),
    result           jsonb,
    created_by       uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT jobs_clinic_id_id_key UNIQUE (clinic_id, id)
);
CREATE UNIQUE INDEX jobs_clinic_idempotency_key ON jobs (clinic_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_clinic_status_idx ON jobs (clinic_id, status, created_at);
-- The outbox sweep: queued rows not yet (or no longer known to be) in Redis.
CREATE INDEX jobs_undispatched_idx ON jobs (run_at) WHERE status = 'queued' AND dispatched_at IS NULL;

CREATE TYPE document_status AS ENUM ('pending', 'ready', 'failed');

CREATE TABLE xrays (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id     uuid NOT NULL REFERENCES clinics (id),
    patient_id    uuid NOT NULL,
    uploaded_by   uuid,
    content_type  text NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg')),
    byte_size     integer NOT NULL CHECK (byte_size > 0),
    sha256        bytea NOT NULL CHECK (length(sha256) = 32),
    image         bytea NOT NULL,
    thumbnail     bytea,
    width         integer CHECK (width > 0),
    height        integer CHECK (height > 0),
    status        document_status NOT NULL DEFAULT 'pending',
    analysis      jsonb,
    error         text CHECK (length(error) <= 4000),
    job_id        uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    analysed_at   timestamptz,
    CONSTRAINT xrays_clinic_id_id_key UNIQUE (clinic_id, id),
    CONSTRAINT xrays_patient_fkey FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id),
    CONSTRAINT xrays_job_fkey FOREIGN KEY (clinic_id, job_id) REFERENCES jobs (clinic_id, id)
);
CREATE INDEX xrays_clinic_patient_idx ON xrays (clinic_id, patient_id, created_at DESC);

CREATE TABLE reports (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id     uuid NOT NULL REFERENCES clinics (id),
    patient_id    uuid NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('insurance')),
    params        jsonb NOT NULL DEFAULT '{}',
    status        document_status NOT NULL DEFAULT 'pending',
    pdf           bytea,
    error         text CHECK (length(error) <= 4000),
    job_id        uuid,
    requested_by  uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    CONSTRAINT reports_clinic_id_id_key UNIQUE (clinic_id, id),
    CONSTRAINT reports_patient_fkey FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id),
    CONSTRAINT reports_job_fkey FOREIGN KEY (clinic_id, job_id) REFERENCES jobs (clinic_id, id)
);
CREATE INDEX reports_clinic_patient_idx ON reports (clinic_id, patient_id, created_at DESC);

CREATE TYPE notification_audience AS ENUM ('user', 'role', 'clinic', 'everyone');

-- The notification inbox: stored first, then pushed to live WebSocket connections.
-- `everyone` announcements have no clinic; every other audience lives inside one clinic.
CREATE TABLE notifications (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clinic_id        uuid REFERENCES clinics (id),
    audience         notification_audience NOT NULL,
    audience_user_id uuid,
    audience_role    user_role,
    kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]{1,63}$'),
    title            text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body             jsonb NOT NULL DEFAULT '{}',
    dedupe_key       text CHECK (length(dedupe_key) <= 255),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_audience_shape CHECK (
        (audience = 'everyone' AND clinic_id IS NULL AND audience_user_id IS NULL AND audience_role IS NULL)
        OR (audience = 'clinic' AND clinic_id IS NOT NULL AND audience_user_id IS NULL AND audience_role IS NULL)
        OR (audience = 'role' AND clinic_id IS NOT NULL AND audience_role IS NOT NULL AND audience_user_id IS NULL)
        OR (audience = 'user' AND clinic_id IS NOT NULL AND audience_user_id IS NOT NULL AND audience_role IS NULL)
    ),
    CONSTRAINT notifications_user_fkey FOREIGN KEY (clinic_id, audience_user_id) REFERENCES users (clinic_id, id)
);
CREATE INDEX notifications_clinic_id_idx ON notifications (clinic_id, id);
CREATE INDEX notifications_everyone_idx ON notifications (id) WHERE audience = 'everyone';
-- Reminders and no-show notices are sent once per dedupe key, however often the scheduler runs.
CREATE UNIQUE INDEX notifications_clinic_dedupe_key ON notifications (clinic_id, dedupe_key) WHERE dedupe_key IS NOT NULL;

CREATE TABLE notification_reads (
    notification_id bigint NOT NULL REFERENCES notifications (id),
    clinic_id       uuid NOT NULL REFERENCES clinics (id),
    user_id         uuid NOT NULL,
    read_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clinic_id, user_id, notification_id),
    CONSTRAINT notification_reads_user_fkey FOREIGN KEY (clinic_id, user_id) REFERENCES users (clinic_id, id)
);

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY jobs_tenant ON jobs
    USING (clinic_id = app_current_clinic())
    WITH CHECK (clinic_id = app_current_clinic());

ALTER TABLE xrays ENABLE ROW LEVEL SECURITY;
ALTER TABLE xrays FORCE ROW LEVEL SECURITY;
CREATE POLICY xrays_tenant ON xrays
    USING (clinic_id = app_current_clinic())
    WITH CHECK (clinic_id = app_current_clinic());

ALTER TABLE reports ENABLE ROW LEVEL SECURITY;
ALTER TABLE reports FORCE ROW LEVEL SECURITY;
CREATE POLICY reports_tenant ON reports
    USING (clinic_id = app_current_clinic())
    WITH CHECK (clinic_id = app_current_clinic());

ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY notifications_read ON notifications FOR SELECT
    USING (clinic_id IS NULL OR clinic_id = app_current_clinic());
CREATE POLICY notifications_insert ON notifications FOR INSERT
    WITH CHECK (clinic_id = app_current_clinic());

ALTER TABLE notification_reads ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_reads FORCE ROW LEVEL SECURITY;
CREATE POLICY notification_reads_tenant ON notification_reads
    USING (clinic_id = app_current_clinic())
    WITH CHECK (clinic_id = app_current_clinic());

GRANT SELECT, INSERT, UPDATE ON jobs, xrays, reports TO pulso_app;
GRANT SELECT, INSERT ON notifications TO pulso_app;
GRANT SELECT, INSERT, DELETE ON notification_reads TO pulso_app;
