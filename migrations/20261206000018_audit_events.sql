-- The audit trail: who changed what, where, when and from what to what, written in the same
-- transaction as the change it records (`shared::audit`), so neither exists without the other.
--
-- Append-only for the application: `pulso_app` may insert and read, never update or delete.
-- The owner keeps the power to delete (the demo's reset; a clinic's data erased at the end of
-- its retention period). Rows hold field names and values of staff, clinic and catalog
-- settings and of patient records' administrative fields; never clinical free text (a change
-- of a patient's notes is recorded as changed, without its words).
CREATE TABLE audit_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL: a change to what every clinic shares (the global catalog), by a platform operator.
    clinic_id   uuid REFERENCES clinics (id),
    -- NULL: done by Pulso itself (a scheduled task), not by a person.
    actor_id    uuid REFERENCES users (id),
    action      text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    target_type text NOT NULL CHECK (target_type ~ '^[a-z_]+$'),
    target_id   text NOT NULL CHECK (length(target_id) BETWEEN 1 AND 200),
    -- {"field": {"before": …, "after": …}} for the fields that changed.
    changes     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(changes) = 'object'),
    request_id  text CHECK (length(request_id) <= 64),
    occurred_at timestamptz NOT NULL DEFAULT now()
);
-- `GET /admin/audit`: a clinic's events newest first, optionally of one action or target.
CREATE INDEX audit_events_clinic_idx ON audit_events (clinic_id, id DESC);
CREATE INDEX audit_events_target_idx ON audit_events (clinic_id, target_type, target_id, id DESC);

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_events_tenant ON audit_events FOR SELECT
    USING (clinic_id = app_current_clinic());
CREATE POLICY audit_events_record ON audit_events FOR INSERT
    WITH CHECK (clinic_id = app_current_clinic() OR (clinic_id IS NULL AND app_platform_admin()));
-- Pulso's operators read every clinic's trail (and the platform's own).
CREATE POLICY audit_events_platform ON audit_events FOR SELECT
    USING (app_platform_admin());

GRANT SELECT, INSERT ON audit_events TO pulso_app;
