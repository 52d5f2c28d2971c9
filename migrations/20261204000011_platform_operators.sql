-- Pulso's own operators: who may act on what every clinic shares (the global catalog, every
-- clinic's cache and queues, announcements to everyone, the deep health check). A token's
-- `platform_admin` claim alone no longer grants it: the server checks this table too, on every
-- request (`shared::auth::callers`), so removing a row ends the power within the caller cache's
-- lifetime, or at once from the API that removes it.
CREATE TABLE platform_operators (
    user_id    uuid PRIMARY KEY REFERENCES users (id),
    granted_at timestamptz NOT NULL DEFAULT now(),
    -- Why this person has the power (a ticket, a role): operators are few and audited by hand.
    reason     text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500)
);

-- Not a tenant table: the application may ask whether a user of its current clinic is an
-- operator, and nothing else. Rows are granted by the owner (the dev tool's seed, an operator's
-- psql), which row-level security does not restrict here (not FORCEd).
ALTER TABLE platform_operators ENABLE ROW LEVEL SECURITY;
CREATE POLICY platform_operators_self ON platform_operators FOR SELECT
    USING (user_id IN (SELECT id FROM users));
GRANT SELECT ON platform_operators TO pulso_app;
