-- fw schema version 13 (PostgreSQL): fw_claim_v3, fw_claim_v2 with a lower bound on the due
-- time (p_since; '-Infinity' for none): a worker whose slots are nearly all busy keeps its
-- last few for instances falling due after its last ordinary claim (a short timer set
-- during a storm of 100,000 due ones), and claims them with p_since. Otherwise as
-- fw_claim_v2 of version 11, which stays for workers of the previous release (as a call of
-- fw_claim_v3, at the end).
CREATE FUNCTION fw_claim_v3(
    p_owner text, p_limit integer, p_now double precision, p_lease_until double precision,
    p_batch text, p_since double precision
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
        WHERE i.wake_at <= p_now AND i.wake_at >= p_since
            AND i.status IN ('queued', 'waiting', 'running')
        ORDER BY i.wake_at DESC
        LIMIT p_limit / 2 + p_limit % 2 * (floor(p_now * 1000)::bigint % 2)
        FOR UPDATE SKIP LOCKED
    ), oldest AS (
        SELECT i.id, i.status AS was, i.lease_owner AS was_owner, i.wake_at AS was_due
        FROM instances i
        WHERE i.wake_at <= p_now AND i.wake_at >= p_since
            AND i.status IN ('queued', 'waiting', 'running')
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

-- fw_claim_v2, which workers of the previous release call, is now fw_claim_v3 with no lower
-- bound: one body for both.
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
) LANGUAGE sql AS $$
    SELECT * FROM fw_claim_v3(p_owner, p_limit, p_now, p_lease_until, p_batch, '-Infinity')
$$;
