-- fw schema version 9 (PostgreSQL): the worker registry (store/workers.py). Each worker inserts
-- its row when it starts, beats it, and deletes it when it stops cleanly. lock_key names the
-- session advisory lock (pg_advisory_lock(LIVENESS_LOCKS, lock_key)) the worker holds on a
-- connection of its own: the server drops it the instant that connection closes (the process
-- died), so a free lock with a row present means a dead worker. It keeps its row, with
-- dead_at, for a while.
CREATE TABLE workers (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    fw_version text NOT NULL,
    code_version text NOT NULL,
    concurrency integer NOT NULL,
    started_at double precision NOT NULL,
    heartbeat_at double precision NOT NULL,
    running integer NOT NULL DEFAULT 0,
    lock_key integer NOT NULL DEFAULT 0,
    dead_at double precision
);
