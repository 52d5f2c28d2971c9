-- People, clinics and organizations apart: a user is a person, a membership gives that person a
-- role at one clinic, so one dentist may work at two clinics of a chain with one sign-in.
--
-- Before: `users (id, clinic_id, role, active, …)`, one row per person per clinic. After:
--   organizations  a chain of clinics (every clinic belongs to one);
--   clinics        gain the settings a clinic's admin manages (address, phone, locale, currency,
--                  default appointment length, brand colour);
--   users          the person: email (unique: one person, one row), name;
--   memberships    (clinic, user) → role, active, calendar colour. Rows are deactivated, never
--                  deleted, so what a person did at a clinic keeps its author.
-- Tenant rows that named a user of their clinic (an appointment's dentist, a notification's
-- audience, a read receipt) now name a membership of their clinic, by the same two columns.
--
-- Row-level security gains a second key beside `app.clinic_id`: `app.user_id`, set by
-- `shared::db::begin_user` before any clinic is chosen, which shows a person their own
-- memberships and the clinics they belong to (what `GET /me` and the choice of clinic need),
-- and nothing else.

CREATE FUNCTION app_current_user() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT NULLIF(current_setting('app.user_id', true), '')::uuid $$;
GRANT EXECUTE ON FUNCTION app_current_user() TO pulso_app;

CREATE TABLE organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Every existing clinic becomes an organization of its own; chains are formed by moving clinics.
INSERT INTO organizations (id, slug, name, created_at)
SELECT gen_random_uuid(), slug, name, created_at FROM clinics;

ALTER TABLE clinics
    ADD COLUMN organization_id uuid REFERENCES organizations (id),
    ADD COLUMN address text CHECK (length(address) BETWEEN 1 AND 500),
    ADD COLUMN phone text CHECK (phone ~ '^\+?[0-9 ()-]{6,25}$'),
    ADD COLUMN locale text NOT NULL DEFAULT 'es-ES' CHECK (locale ~ '^[a-z]{2}(-[A-Z]{2})?$'),
    ADD COLUMN currency text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    ADD COLUMN default_appointment_minutes integer NOT NULL DEFAULT 30
        CHECK (default_appointment_minutes BETWEEN 5 AND 480),
    ADD COLUMN brand_color text CHECK (brand_color ~ '^#[0-9a-f]{6}$'),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
UPDATE clinics c SET organization_id = o.id FROM organizations o WHERE o.slug = c.slug;
ALTER TABLE clinics ALTER COLUMN organization_id SET NOT NULL;
CREATE INDEX clinics_organization_idx ON clinics (organization_id);

CREATE TABLE memberships (
    clinic_id      uuid NOT NULL REFERENCES clinics (id),
    user_id        uuid NOT NULL REFERENCES users (id),
    role           user_role NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    -- The colour the calendar draws this person's appointments in; NULL: one derived from the
    -- user id (`shared::clinics`), stable across requests.
    calendar_color text CHECK (calendar_color ~ '^#[0-9a-f]{6}$'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clinic_id, user_id)
);
-- The choice of clinic and `GET /me` look a person's memberships up by user.
CREATE INDEX memberships_user_idx ON memberships (user_id) INCLUDE (active);
CREATE INDEX memberships_clinic_role_idx ON memberships (clinic_id, role) WHERE active;

INSERT INTO memberships (clinic_id, user_id, role, active, created_at, updated_at)
SELECT clinic_id, id, role, active, created_at, created_at FROM users;

-- What named a user of its clinic now names a membership of its clinic: same columns, so a row
-- still cannot point at another clinic's staff.
ALTER TABLE appointments DROP CONSTRAINT appointments_dentist_fkey,
    ADD CONSTRAINT appointments_dentist_fkey FOREIGN KEY (clinic_id, dentist_id)
        REFERENCES memberships (clinic_id, user_id);
ALTER TABLE notifications DROP CONSTRAINT notifications_user_fkey,
    ADD CONSTRAINT notifications_user_fkey FOREIGN KEY (clinic_id, audience_user_id)
        REFERENCES memberships (clinic_id, user_id);
ALTER TABLE notification_reads DROP CONSTRAINT notification_reads_user_fkey,
    ADD CONSTRAINT notification_reads_user_fkey FOREIGN KEY (clinic_id, user_id)
        REFERENCES memberships (clinic_id, user_id);

-- The policy reads the column dropped below.
DROP POLICY users_tenant ON users;
DROP POLICY platform_operators_self ON platform_operators;
DROP INDEX users_clinic_role_idx;
ALTER TABLE users
    DROP CONSTRAINT users_clinic_id_id_key,
    DROP CONSTRAINT users_clinic_email_key,
    DROP COLUMN clinic_id,
    DROP COLUMN role,
    DROP COLUMN active,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT users_email_key UNIQUE (email);

ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;

-- A clinic's staff list; and a person's own memberships, whichever clinic (or none) is current.
CREATE POLICY memberships_tenant ON memberships
    USING (clinic_id = app_current_clinic())
    WITH CHECK (clinic_id = app_current_clinic());
CREATE POLICY memberships_self ON memberships FOR SELECT
    USING (user_id = app_current_user());

-- A person is visible to themselves and to the clinic they are a member of (active or not: the
-- author of an old appointment keeps a name).
CREATE POLICY users_visible ON users FOR SELECT
    USING (id = app_current_user()
           OR id IN (SELECT user_id FROM memberships WHERE clinic_id = app_current_clinic()));
CREATE POLICY users_change ON users FOR UPDATE
    USING (id IN (SELECT user_id FROM memberships WHERE clinic_id = app_current_clinic()));
-- A clinic adds the people it invites.
CREATE POLICY users_add ON users FOR INSERT
    WITH CHECK (app_current_clinic() IS NOT NULL);

-- The clinics a person belongs to (names, time zones for `GET /me`).
CREATE POLICY clinics_member ON clinics FOR SELECT
    USING (id IN (SELECT clinic_id FROM memberships WHERE user_id = app_current_user()));

CREATE POLICY organizations_visible ON organizations FOR SELECT
    USING (id IN (SELECT organization_id FROM clinics));
-- Pulso's operators create and rename organizations (`shared::db::begin_platform`).
CREATE POLICY organizations_platform ON organizations
    USING (app_platform_admin())
    WITH CHECK (app_platform_admin());

CREATE POLICY platform_operators_self ON platform_operators FOR SELECT
    USING (user_id IN (SELECT id FROM users));

GRANT SELECT ON organizations TO pulso_app;
GRANT SELECT, INSERT, UPDATE ON memberships TO pulso_app;
GRANT SELECT, INSERT, UPDATE ON users TO pulso_app;
