-- fw schema version 11 (PostgreSQL): what keeps a long history cheap to read.
--
-- instance_counts holds signed deltas of the number of instances of each workflow in each
-- status: inserts and deletes add one row per (workflow, status) and statement, a status
-- change two rows. No row is ever updated, so concurrent transactions never wait on one
-- another for a count. fw_fold_instance_counts() folds the deltas into one row per
-- (workflow, status); counting (and pruning) calls it, one process at a time.
CREATE TABLE instance_counts (
    workflow text NOT NULL,
    status text NOT NULL,
    n bigint NOT NULL
);

CREATE FUNCTION fw_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO instance_counts (workflow, status, n)
        SELECT workflow, status, count(*) FROM fw_new GROUP BY workflow, status;
    RETURN NULL;
END $$;

CREATE FUNCTION fw_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO instance_counts (workflow, status, n)
        SELECT workflow, status, -count(*) FROM fw_old GROUP BY workflow, status;
    RETURN NULL;
END $$;

CREATE FUNCTION fw_count_status_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO instance_counts (workflow, status, n)
        VALUES (OLD.workflow, OLD.status, -1), (NEW.workflow, NEW.status, 1);
    RETURN NULL;
END $$;

-- The triggers come before the first count: creating them locks the table against writes
-- until this migration commits, so no instance is counted twice or missed.
CREATE TRIGGER instance_counts_insert AFTER INSERT ON instances
    REFERENCING NEW TABLE AS fw_new FOR EACH STATEMENT EXECUTE FUNCTION fw_count_inserted();
CREATE TRIGGER instance_counts_delete AFTER DELETE ON instances
    REFERENCING OLD TABLE AS fw_old FOR EACH STATEMENT EXECUTE FUNCTION fw_count_deleted();
-- Row by row, and only when the status changes: a journal write (no status change) pays
-- nothing for it.
CREATE TRIGGER instance_counts_update AFTER UPDATE OF status ON instances
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION fw_count_status_change();

INSERT INTO instance_counts (workflow, status, n)
    SELECT workflow, status, count(*) FROM instances GROUP BY workflow, status;

CREATE FUNCTION fw_fold_instance_counts() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- One folder at a time; another one skips (its deltas are folded by the next call).
    IF pg_try_advisory_xact_lock(1719075330) THEN
        WITH folded AS (DELETE FROM instance_counts RETURNING workflow, status, n)
        INSERT INTO instance_counts (workflow, status, n)
            SELECT workflow, status, sum(n) FROM folded GROUP BY workflow, status
            HAVING sum(n) <> 0;
    END IF;
END $$;

-- Lists filtered by workflow and status at once walk this index newest first.
CREATE INDEX instances_workflow_status ON instances (workflow, status, seq);
-- Ids by a typed prefix (find_instance): a range of ids in code point order, which only the
-- "C" collation gives whatever the database's collation is.
CREATE INDEX instances_id_c ON instances ((id COLLATE "C"));

-- Claims: when more instances are due than a claim takes, half of it goes to the most
-- recently due (the odd one by the parity of p_now's millisecond: store/base.py newest_share)
-- and the rest to the longest due (Store.claim), so a timer falling due during a backlog
-- starts within a claim or two of its due time. Otherwise as in version 2.
CREATE OR REPLACE FUNCTION fw_claim_v2(
    p_owner text, p_limit integer, p_now double precision, p_lease_until double precision,
    p_batch text
) RETURNS TABLE (
    r_seq bigint, r_id text, r_workflow text, r_status text, r_params text, r_output text,
    r_error text, r_version text, r_parent_id text, r_generation integer,
    r_created_at double precision, r_updated_at double precision, r_wake_at double precision,
    r_lease_owner text, r_crash_count integer, r_crashes text, r_control text, r_token text,
    r_crashed boolean,
    r_steps json
) LANGUAGE plpgsql AS $$
DECLARE
    v_ids text[];
    v_crashed text[];
BEGIN
    -- A claim need not wait for its commit to reach the disk: if the server crashes before it
    -- does, the claim is simply undone (the instance is due again and the claimer's fenced
    -- writes fail), and any journal write that did commit after it flushed it too.
    PERFORM set_config('synchronous_commit', 'off', true);
    WITH newest AS (
        SELECT i.id, i.status AS was, i.lease_owner AS was_owner, i.wake_at AS was_due
        FROM instances i
        WHERE i.wake_at <= p_now AND i.status IN ('queued', 'waiting', 'running')
        ORDER BY i.wake_at DESC
        LIMIT p_limit / 2 + p_limit % 2 * (floor(p_now * 1000)::bigint % 2)
        FOR UPDATE SKIP LOCKED
    ), oldest AS (
        SELECT i.id, i.status AS was, i.lease_owner AS was_owner, i.wake_at AS was_due
        FROM instances i
        WHERE i.wake_at <= p_now AND i.status IN ('queued', 'waiting', 'running')
            AND i.id NOT IN (SELECT id FROM newest)
        ORDER BY i.wake_at
        LIMIT p_limit - (SELECT count(*) FROM newest)
        FOR UPDATE SKIP LOCKED
    ), due AS (
        SELECT * FROM newest UNION ALL SELECT * FROM oldest
    ), claimed AS (
        UPDATE instances i
        SET status = 'running', lease_owner = p_owner, lease_token = p_batch || ':' || i.seq,
            wake_at = p_lease_until, updated_at = p_now,
            crash_count = i.crash_count + CASE WHEN due.was = 'running' THEN 1 ELSE 0 END,
            crashes = CASE WHEN due.was = 'running'
                THEN fw_crash_history(i.crashes, due.was_owner, due.was_due) ELSE i.crashes END
        FROM due
        WHERE i.id = due.id
        RETURNING i.id, due.was = 'running' AS crashed
    )
    SELECT array_agg(claimed.id), array_agg(claimed.id) FILTER (WHERE claimed.crashed)
    INTO v_ids, v_crashed
    FROM claimed;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT i.seq, i.id, i.workflow, i.status, i.params, i.output, i.error, i.version,
           i.parent_id, i.generation, i.created_at, i.updated_at, i.wake_at, i.lease_owner,
           i.crash_count, i.crashes, i.control, i.lease_token, i.id = ANY(coalesce(v_crashed, '{}')),
           (SELECT json_agg(json_build_array(
                    s.name, s.count, s.seq, s.kind, s.status, s.attempts, s.started_at,
                    s.finished_at, s.wake_at, s.input, s.output, s.error, s.detail)
                ORDER BY s.seq)
            FROM steps s WHERE s.instance_id = i.id)
    FROM instances i
    WHERE i.id = ANY(v_ids)
    ORDER BY i.wake_at, i.seq;
END
$$;
