-- fw schema version 1 (SQLite).
CREATE TABLE instances (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    output TEXT,
    error TEXT,
    version TEXT,
    parent_id TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    -- When a worker should next claim it: the due time of a queued or waiting instance,
    -- the lease expiry of a running one; NULL while paused, ended, or waiting on a signal.
    wake_at REAL,
    lease_owner TEXT,
    lease_token TEXT,
    crash_count INTEGER NOT NULL DEFAULT 0,
    crashes TEXT
);
CREATE INDEX instances_wake ON instances (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX instances_workflow ON instances (workflow, seq);
CREATE INDEX instances_status ON instances (status, seq);
CREATE INDEX instances_parent ON instances (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX instances_owner ON instances (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX instances_updated ON instances (status, updated_at);

CREATE TABLE steps (
    instance_id TEXT NOT NULL,
    name TEXT NOT NULL,
    count INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    wake_at REAL,
    input TEXT,
    output TEXT,
    error TEXT,
    detail TEXT,
    PRIMARY KEY (instance_id, name, count)
) WITHOUT ROWID;

CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    consumed_by TEXT
);
CREATE INDEX events_pending ON events (instance_id, type, seq) WHERE consumed_by IS NULL;
CREATE INDEX events_instance ON events (instance_id);
