-- fw schema version 8 (SQLite): the worker registry (store/workers.py). Each worker inserts
-- its row when it starts, beats it, and deletes it when it stops cleanly; a worker found dead
-- (its lock file free: the kernel released it) keeps its row, with dead_at, for a while.
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    fw_version TEXT NOT NULL,
    code_version TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    running INTEGER NOT NULL DEFAULT 0,
    lock_key INTEGER NOT NULL DEFAULT 0,
    dead_at REAL
);
