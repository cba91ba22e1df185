-- fw schema version 6 (SQLite): how many runs an instance took (claims by a worker, counted
-- by the claim itself) and an instance's own retention in seconds (create(retention=...);
-- NULL: its workflow's or the app's), with an index for pruning the instances that have one.
ALTER TABLE instances ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN retention REAL;
CREATE INDEX instances_own_retention ON instances (updated_at) WHERE retention IS NOT NULL;
