-- Pulso's operators onboard organizations and clinics without SQL
-- (`shared::clinics::onboarding`): a new clinic, with its first admin, in one platform
-- transaction. Only a transaction that set `app.platform_admin` (`shared::db::begin_platform`,
-- after the token's claim and the `platform_operators` row were checked) gains anything here.
GRANT INSERT ON organizations TO pulso_app;
GRANT INSERT ON clinics TO pulso_app;

CREATE POLICY clinics_platform_add ON clinics FOR INSERT
    WITH CHECK (app_platform_admin());
CREATE POLICY memberships_platform_add ON memberships FOR INSERT
    WITH CHECK (app_platform_admin());
-- The first admin may already be a person of another clinic: found by email.
CREATE POLICY users_platform_read ON users FOR SELECT
    USING (app_platform_admin());
CREATE POLICY memberships_platform_read ON memberships FOR SELECT
    USING (app_platform_admin());
