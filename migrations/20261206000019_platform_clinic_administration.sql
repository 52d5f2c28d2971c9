-- Pulso's operators administer every clinic without SQL (`shared::clinics::platform`): they
-- list clinics across organizations and archive or restore one. Like every platform write, this
-- happens only in a transaction that set `app.platform_admin`
-- (`shared::db::begin_platform`, after the token's claim and the caller's
-- `platform_operators` row were checked); no tenant transaction gains anything.
CREATE POLICY clinics_platform_read ON clinics FOR SELECT
    USING (app_platform_admin());
CREATE POLICY clinics_platform_change ON clinics FOR UPDATE
    USING (app_platform_admin())
    WITH CHECK (app_platform_admin());

-- An operator's change of a clinic is recorded in that clinic's trail, not the operator's own
-- clinic's.
DROP POLICY audit_events_record ON audit_events;
CREATE POLICY audit_events_record ON audit_events FOR INSERT
    WITH CHECK (clinic_id = app_current_clinic() OR app_platform_admin());
