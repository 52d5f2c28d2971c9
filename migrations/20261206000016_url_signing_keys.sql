-- The keys of the short-lived signed media URLs (`shared::signed_urls`): an `<img src>` or a
-- download link cannot carry a bearer token, so the API hands out URLs signed with HMAC-SHA256
-- over the method, path, clinic and expiry.
--
-- Keys live here rather than in an environment variable: no secret sits in a function's
-- configuration, and they rotate by themselves. A function signs with the newest key younger
-- than a day and adds one when there is none; a URL names its key, so older keys keep verifying
-- until their last URL has expired; keys older than a week are deleted when a new one is added.
-- Deleting every row revokes every URL handed out.
--
-- Not a tenant table: a key signs URLs of every clinic (the clinic is part of what is signed),
-- so no row-level security applies; only the application role may read or add keys.
CREATE TABLE url_signing_keys (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    secret     bytea NOT NULL CHECK (octet_length(secret) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, DELETE ON url_signing_keys TO pulso_app;
