-- Tenancy foundation: the application role, the per-transaction clinic setting and clinics/users.
--
-- Functions connect as `pulso_app`: not a superuser, not the owner of any table, no BYPASSRLS.
-- Row-level security therefore applies to every query they run. The role is created here (NOLOGIN)
-- so a fresh database is complete after migrating; operators give it LOGIN and a password, or
-- grant it to an IAM-authenticated login role, outside the migrations.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pulso_app') THEN
        CREATE ROLE pulso_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

CREATE EXTENSION IF NOT EXISTS btree_gist;

GRANT USAGE ON SCHEMA public TO pulso_app;

-- The clinic of the current tenant transaction, set with `set_config('app.clinic_id', $1, true)`.
-- NULL outside a tenant transaction: after a transaction-local setting ends, PostgreSQL leaves the
-- empty string behind on that pooled connection, which must mean "no clinic", not a cast error.
CREATE FUNCTION app_current_clinic() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT NULLIF(current_setting('app.clinic_id', true), '')::uuid $$;

GRANT EXECUTE ON FUNCTION app_current_clinic() TO pulso_app;

CREATE TABLE clinics (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone    text NOT NULL DEFAULT 'Europe/Madrid',
    created_at  timestamptz NOT NULL DEFAULT now(),
    archived_at timestamptz
);

CREATE TYPE user_role AS ENUM ('admin', 'dentist', 'receptionist');

CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id   uuid NOT NULL REFERENCES clinics (id),
    email       text NOT NULL CHECK (email = lower(email) AND position('@' IN email) > 1),
    full_name   text NOT NULL CHECK (length(full_name) BETWEEN 1 AND 200),
    role        user_role NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Lets tenant tables reference (clinic_id, user) so a row can never point at another clinic's user.
    CONSTRAINT users_clinic_id_id_key UNIQUE (clinic_id, id),
    CONSTRAINT users_clinic_email_key UNIQUE (clinic_id, email)
);
CREATE INDEX users_clinic_role_idx ON users (clinic_id, role) WHERE active;

ALTER TABLE clinics ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinics FORCE ROW LEVEL SECURITY;
CREATE POLICY clinics_tenant ON clinics
    USING (id = app_current_clinic());

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_tenant ON users
    USING (clinic_id = app_current_clinic())
    WITH CHECK (clinic_id = app_current_clinic());

GRANT SELECT, UPDATE ON clinics TO pulso_app;
GRANT SELECT, INSERT, UPDATE ON users TO pulso_app;
