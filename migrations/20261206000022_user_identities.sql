-- Who a token from an identity provider names: its `(iss, sub)` mapped to a Pulso person. A
-- Cognito token's `sub` is Cognito's own id, learned when Pulso invites the person
-- (`AdminCreateUser` answers it, `shared::identity`); Pulso's own HS256 tokens carry the user id
-- and need no row. One person may have several identities (another pool, a re-created user);
-- an identity names exactly one person.
CREATE TABLE user_identities (
    issuer      text NOT NULL CHECK (length(issuer) BETWEEN 1 AND 500),
    subject     text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_user_idx ON user_identities (user_id);

ALTER TABLE user_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_identities FORCE ROW LEVEL SECURITY;

-- Signing in: a transaction that set the verified token's issuer and subject
-- (`shared::db::begin_identity`) sees that one row, and cannot list the others.
CREATE POLICY user_identities_sign_in ON user_identities FOR SELECT
    USING (issuer = current_setting('app.identity_issuer', true)
           AND subject = current_setting('app.identity_subject', true));
-- Inviting: a clinic links the people who are its members; operators onboarding a clinic link
-- its first admin.
CREATE POLICY user_identities_invite ON user_identities
    USING (app_platform_admin()
           OR user_id IN (SELECT user_id FROM memberships WHERE clinic_id = app_current_clinic()))
    WITH CHECK (app_platform_admin()
           OR user_id IN (SELECT user_id FROM memberships WHERE clinic_id = app_current_clinic()));

GRANT SELECT, INSERT ON user_identities TO pulso_app;

-- Inviting by email (`POST /staff`): a clinic's transaction that named the address it invites
-- (`set_config('app.invite_email', …)`) sees the one person with that address, whichever clinic
-- they work at, so a dentist joining a second clinic stays one person with one sign-in.
CREATE POLICY users_invited ON users FOR SELECT
    USING (app_current_clinic() IS NOT NULL
           AND email = current_setting('app.invite_email', true));
