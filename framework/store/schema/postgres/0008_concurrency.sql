-- fw schema version 8 (PostgreSQL): concurrency limits (runtime/concurrency.py). The key an
-- instance's limit counts it under (the value at its workflow's concurrency_key in its params,
-- computed at create; NULL for a workflow limited as a whole, or not limited), an index of the
-- instances that hold a slot (a lease), and the claim of workers that run limited workflows.

ALTER TABLE instances ADD COLUMN concurrency_key text;
CREATE INDEX instances_held ON instances (workflow, concurrency_key) WHERE lease_owner IS NOT NULL;

-- Claim as fw_claim_v2 does, with at most p_limits[n] instances of workflow p_workflows[n]
-- holding a lease at once (per concurrency_key where p_keyed[n]). Claims of one limited
-- workflow take turns on an advisory transaction lock, so each counts the slots held after
-- the previous claim committed: two workers never fill one free slot twice. Within a group
-- the earliest due (then the earliest created) is claimed first; a full group's instances
-- are passed over, so they never hold back other workflows. An instance whose worker died
-- (still `running`) already holds its slot and is reclaimed as before.
CREATE FUNCTION fw_claim_limited(
    p_owner text, p_limit integer, p_now double precision, p_lease_until double precision,
    p_batch text, p_workflows text[], p_limits integer[], p_keyed boolean[]
) RETURNS TABLE (
    r_seq bigint, r_id text, r_workflow text, r_status text, r_params text, r_output text,
    r_error text, r_version text, r_parent_id text, r_generation integer,
    r_created_at double precision, r_updated_at double precision, r_wake_at double precision,
    r_lease_owner text, r_crash_count integer, r_crashes text, r_control text, r_token text,
    r_crashed boolean,
    r_steps json
) LANGUAGE plpgsql AS $$
DECLARE
    v_workflow text;
    v_open bigint[];
    v_limited bigint[];
    v_ids text[];
    v_crashed text[];
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    FOR v_workflow IN SELECT DISTINCT w FROM unnest(p_workflows) AS w ORDER BY w LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('fw.concurrency:' || v_workflow, 0));
    END LOOP;
    -- Due instances of the other workflows, and the reclaims of dead workers' instances.
    SELECT array_agg(f.seq) INTO v_open FROM (
        SELECT i.seq FROM instances i
        WHERE i.wake_at <= p_now AND i.status IN ('queued', 'waiting', 'running')
          AND (i.status = 'running' OR i.workflow <> ALL(p_workflows))
        ORDER BY i.wake_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ) f;
    -- Due instances of the limited workflows, as many per group as it has free slots.
    WITH limits AS (
        SELECT l.workflow, l.slots, l.keyed
        FROM unnest(p_workflows, p_limits, p_keyed) AS l(workflow, slots, keyed)
    ), held AS (
        SELECT i.workflow, CASE WHEN l.keyed THEN i.concurrency_key END AS key, count(*) AS n
        FROM instances i JOIN limits l ON l.workflow = i.workflow
        WHERE i.lease_owner IS NOT NULL
        GROUP BY 1, 2
    ), queue AS (
        SELECT i.seq, l.slots - coalesce(h.n, 0) AS free, row_number() OVER (
                   PARTITION BY i.workflow, CASE WHEN l.keyed THEN i.concurrency_key END
                   ORDER BY i.wake_at, i.seq) AS place
        FROM instances i JOIN limits l ON l.workflow = i.workflow
        LEFT JOIN held h ON h.workflow = i.workflow
             AND h.key IS NOT DISTINCT FROM (CASE WHEN l.keyed THEN i.concurrency_key END)
        WHERE i.wake_at <= p_now AND i.status IN ('queued', 'waiting')
    )
    SELECT array_agg(f.seq) INTO v_limited FROM (
        SELECT i.seq FROM instances i
        WHERE i.seq IN (SELECT q.seq FROM queue q WHERE q.place <= q.free)
          AND i.wake_at <= p_now AND i.status IN ('queued', 'waiting')
        FOR UPDATE SKIP LOCKED
    ) f;
    WITH due AS (
        SELECT i.id, i.status AS was, i.lease_owner AS was_owner, i.wake_at AS was_due
        FROM instances i
        WHERE i.seq = ANY(coalesce(v_open, '{}') || coalesce(v_limited, '{}'))
        ORDER BY i.wake_at, i.seq
        LIMIT p_limit
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
