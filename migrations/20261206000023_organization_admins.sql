-- A chain's management: `org_admin` of an organization reads every clinic of it together
-- (`GET /organization`, `GET /organization/dashboard`) without being on any clinic's staff.
-- Pulso's operators name them (`POST /platform/organizations/{id}/admins`); rows are
-- deactivated, never deleted, like memberships.
CREATE TABLE organization_admins (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX organization_admins_user_idx ON organization_admins (user_id) INCLUDE (active);

ALTER TABLE organization_admins ENABLE ROW LEVEL SECURITY;
ALTER TABLE organization_admins FORCE ROW LEVEL SECURITY;

-- A person sees their own (the gate, `GET /me`); operators manage them.
CREATE POLICY organization_admins_self ON organization_admins FOR SELECT
    USING (user_id = app_current_user());
CREATE POLICY organization_admins_platform ON organization_admins
    USING (app_platform_admin())
    WITH CHECK (app_platform_admin());

-- An organization's admin reads its organization and its clinics (names, settings) in a
-- transaction that set `app.organization_id` (`shared::db::begin_organization`, after the gate
-- found their active row); `GET /me`, as themselves, names the organizations they administer.
CREATE FUNCTION app_current_organization() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT NULLIF(current_setting('app.organization_id', true), '')::uuid $$;
GRANT EXECUTE ON FUNCTION app_current_organization() TO pulso_app;

CREATE POLICY clinics_organization ON clinics FOR SELECT
    USING (organization_id = app_current_organization());
CREATE POLICY organizations_own ON organizations FOR SELECT
    USING (id = app_current_organization()
           OR id IN (SELECT organization_id FROM organization_admins
                      WHERE user_id = app_current_user() AND active));

GRANT SELECT, INSERT, UPDATE ON organization_admins TO pulso_app;
