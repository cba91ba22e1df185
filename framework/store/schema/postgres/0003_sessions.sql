-- fw schema version 3 (PostgreSQL): Studio login sessions, shared by every server process
-- using the database. `id` is a SHA-256 of the session's secret (the cookie holds the secret
-- itself), so reading the table gives no one a login; logging out deletes the row.
CREATE TABLE sessions (
    id text PRIMARY KEY,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
