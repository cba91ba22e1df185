-- fw schema version 3 (SQLite): Studio login sessions, shared by every server process using
-- the file. `id` is a SHA-256 of the session's secret (the cookie holds the secret itself),
-- so reading the table gives no one a login; logging out deletes the row.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
