-- fw schema version 4 (SQLite): the ctx.log lines of instances (runtime/logs.py), the last
-- 1,000 of each kept, deleted with their instance by prune. (run, line) names a line within
-- the claim that wrote it.
CREATE TABLE logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    run TEXT NOT NULL,
    line INTEGER NOT NULL,
    at REAL NOT NULL,
    level TEXT NOT NULL,
    step TEXT,
    step_count INTEGER,
    message TEXT NOT NULL,
    fields TEXT
);
CREATE INDEX logs_instance ON logs (instance_id, seq);
