-- fw schema version 9 (SQLite): drop instances_held (version 7). The claims of limited
-- workflows count the held leases through instances_owner (lease_owner) as well, and the
-- extra index cost every claim and every release of every instance an index write.
DROP INDEX IF EXISTS instances_held;
