-- fw schema version 2 (PostgreSQL): a pending control request on an instance ('terminate':
-- run its compensation, then end it terminated), and journal writes that pass their rows as
-- one JSON document instead of 19 arrays (far cheaper for the client to send).
--
-- The version 1 functions stay, unchanged: workers of the previous release keep working
-- while a rolling deploy replaces them. A later migration drops them.

ALTER TABLE instances ADD COLUMN control text;

-- Claim up to p_limit runnable instances for p_owner (as fw_claim, with control).
CREATE FUNCTION fw_claim_v2(
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
    WITH due AS (
        SELECT i.id, i.status AS was, i.lease_owner AS was_owner, i.wake_at AS was_due
        FROM instances i
        WHERE i.wake_at <= p_now AND i.status IN ('queued', 'waiting', 'running')
        ORDER BY i.wake_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
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


-- Commit one transition of a running instance if p_token still holds its lease; return the
-- instance's status after it, or NULL when the lease is lost. Mirrors SQLiteStore._apply.
-- p_steps: [[name, count, seq, kind, status, attempts, started_at, finished_at, wake_at,
-- input, output, error, detail], ...]; p_children: [[id, workflow, params, version,
-- parent_id, created_at], ...].
CREATE FUNCTION fw_apply_v2(
    p_id text, p_token text, p_now double precision,
    p_status text, p_wake_at double precision, p_output text, p_error text,
    p_release boolean, p_version text, p_wake_on_events text[], p_wake_on_children text[],
    p_steps jsonb, p_children jsonb
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_current text;
    v_parent text;
    v_crash_count integer;
    v_version text;
    v_status text;
    v_wake_at double precision;
    v_wake boolean := false;
    v_release boolean;
    v_keep boolean;
    v_has_steps boolean := coalesce(jsonb_array_length(p_steps), 0) > 0;
    v_has_children boolean := coalesce(jsonb_array_length(p_children), 0) > 0;
BEGIN
    SELECT status, parent_id, crash_count, version INTO v_current, v_parent, v_crash_count, v_version
    FROM instances WHERE id = p_id AND lease_token = p_token FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    IF v_has_steps THEN
        INSERT INTO steps AS s (instance_id, name, count, seq, kind, status, attempts, started_at,
                                finished_at, wake_at, input, output, error, detail)
        SELECT p_id, x->>0, (x->>1)::integer, (x->>2)::integer, x->>3, x->>4, (x->>5)::integer,
               (x->>6)::double precision, (x->>7)::double precision, (x->>8)::double precision,
               x->>9, x->>10, x->>11, x->>12
        FROM jsonb_array_elements(p_steps) AS x
        ON CONFLICT (instance_id, name, count) DO UPDATE SET
            seq = excluded.seq, kind = excluded.kind, status = excluded.status,
            attempts = excluded.attempts, started_at = excluded.started_at,
            finished_at = excluded.finished_at, wake_at = excluded.wake_at,
            input = excluded.input, output = excluded.output, error = excluded.error,
            detail = excluded.detail;
    END IF;

    -- A journal entry mid-run: the step rows are the whole write, but for the first write
    -- after a crash (which resets the count) and the first that records the code version.
    IF p_status IS NULL AND NOT p_release AND p_output IS NULL AND p_error IS NULL
       AND NOT v_has_children THEN
        IF (v_crash_count > 0 AND v_has_steps) OR (v_version IS NULL AND p_version IS NOT NULL) THEN
            UPDATE instances SET crash_count = CASE WHEN v_has_steps THEN 0 ELSE crash_count END,
                                 version = coalesce(version, p_version)
            WHERE id = p_id;
        END IF;
        RETURN v_current;
    END IF;

    IF v_has_children THEN
        INSERT INTO instances (id, workflow, status, params, version, parent_id, created_at,
                               updated_at, wake_at)
        SELECT c->>0, c->>1, 'queued', c->>2, c->>3, c->>4, (c->>5)::double precision, p_now, p_now
        FROM jsonb_array_elements(p_children) AS c
        ON CONFLICT (id) DO NOTHING;
        v_wake := true;
    END IF;

    -- The status and wake time after the transition (SQLiteStore._next_state).
    IF p_status IS NULL THEN
        v_status := v_current;
    ELSIF v_current = 'paused' AND p_status NOT IN ('complete', 'errored', 'terminated') THEN
        v_status := 'paused';
    ELSIF p_status = 'queued' THEN
        v_status := 'queued';
        v_wake_at := coalesce(p_wake_at, p_now);
        v_wake := true;
    ELSIF p_status = 'waiting' AND (
        EXISTS (SELECT 1 FROM events e
                WHERE e.instance_id = p_id AND e.consumed_by IS NULL
                  AND e.type = ANY(coalesce(p_wake_on_events, '{}')))
        OR EXISTS (SELECT 1 FROM instances c
                   WHERE c.id = ANY(coalesce(p_wake_on_children, '{}'))
                     AND c.status IN ('complete', 'errored', 'terminated'))
    ) THEN
        v_status := 'waiting';
        v_wake_at := p_now;
        v_wake := true;
    ELSE
        v_status := p_status;
        v_wake_at := p_wake_at;
    END IF;

    v_release := p_release OR v_status IN ('complete', 'errored', 'terminated');
    v_keep := NOT v_release AND v_status IN ('running', 'paused');
    UPDATE instances SET
        status = v_status,
        wake_at = CASE WHEN v_keep THEN wake_at ELSE v_wake_at END,
        updated_at = p_now,
        output = coalesce(p_output, output),
        error = coalesce(p_error, error),
        version = coalesce(version, p_version),
        crash_count = CASE WHEN v_has_steps THEN 0 ELSE crash_count END,
        control = CASE WHEN v_status IN ('complete', 'errored', 'terminated') THEN NULL ELSE control END,
        lease_owner = CASE WHEN v_release THEN NULL ELSE lease_owner END,
        lease_token = CASE WHEN v_release THEN NULL ELSE lease_token END
    WHERE id = p_id;

    IF v_status IN ('complete', 'errored', 'terminated') AND v_parent IS NOT NULL
       AND fw_wake_parent(p_id, v_parent, p_now) THEN
        v_wake := true;
    END IF;
    IF v_wake THEN
        PERFORM pg_notify('fw_wakeup', '');
    END IF;
    RETURN v_status;
END
$$;
