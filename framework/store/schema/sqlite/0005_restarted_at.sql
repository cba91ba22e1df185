-- fw schema version 5 (SQLite): when an instance was last restarted (NULL: never), from which
-- its deadline counts (@workflow(timeout=...), [[workflows]] deadline; runtime/execution.py).
ALTER TABLE instances ADD COLUMN restarted_at REAL;
