-- fw schema version 7 (SQLite): concurrency limits (runtime/concurrency.py). The key an
-- instance's limit counts it under (the value at its workflow's concurrency_key in its params,
-- computed at create; NULL for a workflow limited as a whole, or not limited), and an index
-- of the instances that hold a slot (a lease) for the claim to count them.
ALTER TABLE instances ADD COLUMN concurrency_key TEXT;
CREATE INDEX instances_held ON instances (workflow, concurrency_key) WHERE lease_owner IS NOT NULL;
