-- The admin dashboard's indexes, and the role scheduled work across clinics connects as.

-- `pulso_system`: the scheduler's role (SYSTEM_DATABASE_URL). It is pulso_app (same table
-- privileges, same row-level security: tenant work runs in ordinary tenant transactions) plus
-- one thing no tenant may do: list every clinic, to know whose dashboards to refresh. Created
-- NOLOGIN like pulso_app; operators give it LOGIN and a password (or an IAM login role) outside
-- the migrations, and only the scheduler receives its credentials.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pulso_system') THEN
        CREATE ROLE pulso_system NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    -- Checked first so a re-run (or a role prepared by an operator) needs no privilege at all.
    IF NOT pg_has_role('pulso_system', 'pulso_app', 'MEMBER') THEN
        GRANT pulso_app TO pulso_system;
    END IF;
END
$$;

-- Permissive, so it adds to clinics_tenant (OR) for this role only: every clinic row is
-- readable, none is writable (pulso_app's UPDATE still goes through clinics_tenant).
CREATE POLICY clinics_system_read ON clinics FOR SELECT TO pulso_system
    USING (true);

-- The dashboard (shared::dashboard::repository) computes every figure in one statement from
-- three range scans per clinic, each index-only once autovacuum has set the visibility map:
--   * today and the next seven days: every appointment starting in that range, with its
--     dentist, end and status (the load per dentist and today's counts by status);
--   * the last 30 days and this month: completed and no-show appointments only, with status
--     and procedure (the no-show rate and the revenue estimate). Partial, because the status
--     cannot be an index condition here: under row-level security PostgreSQL may apply a
--     non-leakproof operator such as enum equality only after the policy, so an index on
--     (clinic_id, status, starts_at) is never used for it; a partial index's predicate is;
--   * patients registered in the last 30 days.
-- On a clinic with 200,000 appointments and 20,000 patients a miss reads about 20,000 index
-- entries (~170 buffers) and no table page, where the existing indexes needed bitmap heap scans
-- over ~300 table pages (the README has the EXPLAIN figures).
-- Plain CREATE INDEX: the migration runs in a transaction and these tables are small today; on
-- a large live table they would be built CONCURRENTLY in a migration of their own.
CREATE INDEX appointments_clinic_starts_load_idx
    ON appointments (clinic_id, starts_at) INCLUDE (dentist_id, ends_at, status);
CREATE INDEX appointments_clinic_closed_idx
    ON appointments (clinic_id, starts_at) INCLUDE (status, procedure_code)
    WHERE status IN ('completed', 'no_show');
CREATE INDEX patients_clinic_created_idx
    ON patients (clinic_id, created_at) WHERE archived_at IS NULL;
