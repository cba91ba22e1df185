-- fw schema version 6 (PostgreSQL): when an instance was last restarted (NULL: never), from
-- which its deadline counts (@workflow(timeout=...), [[workflows]] deadline;
-- runtime/execution.py).
ALTER TABLE instances ADD COLUMN restarted_at double precision;
