-- Real-time notifications: announcements to every clinic, once-only delivery keys for them, and
-- one index per audience so that reading an inbox is four bounded index range scans.

-- A platform admin (a transaction that set app.platform_admin after the server verified the
-- token's claim, `shared::db::begin_platform`) may store an announcement for everyone: the only
-- notification without a clinic. Every other row still has to be the current clinic's.
CREATE POLICY notifications_everyone_insert ON notifications FOR INSERT
    WITH CHECK (clinic_id IS NULL AND audience = 'everyone' AND app_platform_admin());

-- `notifications_clinic_dedupe_key` cannot catch duplicates without a clinic (NULLs are
-- distinct): announcements to everyone get their own once-only key.
CREATE UNIQUE INDEX notifications_everyone_dedupe_key ON notifications (dedupe_key)
    WHERE clinic_id IS NULL AND dedupe_key IS NOT NULL;

-- The inbox of (clinic, user, role) after an id: one range scan per audience, each already in
-- id order (`shared::realtime::inbox`). `notifications_everyone_idx` serves the fourth.
CREATE INDEX notifications_user_inbox_idx ON notifications (clinic_id, audience_user_id, id)
    WHERE audience = 'user';
CREATE INDEX notifications_role_inbox_idx ON notifications (clinic_id, audience_role, id)
    WHERE audience = 'role';
CREATE INDEX notifications_clinic_inbox_idx ON notifications (clinic_id, id)
    WHERE audience = 'clinic';
