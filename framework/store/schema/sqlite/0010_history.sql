-- fw schema version 10 (SQLite): what keeps a long history cheap to read.
--
-- instance_counts holds the number of instances of each workflow in each status, kept by
-- triggers on every insert, status change and delete, so counting (Studio's workflows page,
-- `fw status`) reads a few rows however many instances are stored. SQLite has one writer at a
-- time, so one row per (workflow, status) is never contended.
CREATE TABLE instance_counts (
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (workflow, status)
) WITHOUT ROWID;
INSERT INTO instance_counts (workflow, status, n)
    SELECT workflow, status, count(*) FROM instances GROUP BY workflow, status;
CREATE TRIGGER instance_counts_insert AFTER INSERT ON instances BEGIN
    INSERT INTO instance_counts (workflow, status, n) VALUES (NEW.workflow, NEW.status, 1)
        ON CONFLICT (workflow, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER instance_counts_update AFTER UPDATE OF status ON instances
WHEN OLD.status IS NOT NEW.status BEGIN
    UPDATE instance_counts SET n = n - 1 WHERE workflow = OLD.workflow AND status = OLD.status;
    INSERT INTO instance_counts (workflow, status, n) VALUES (NEW.workflow, NEW.status, 1)
        ON CONFLICT (workflow, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER instance_counts_delete AFTER DELETE ON instances BEGIN
    UPDATE instance_counts SET n = n - 1 WHERE workflow = OLD.workflow AND status = OLD.status;
END;
-- Lists filtered by workflow and status at once walk this index newest first.
CREATE INDEX instances_workflow_status ON instances (workflow, status, seq);
