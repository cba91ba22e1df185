-- fw schema version 1 (PostgreSQL 13 or later).
--
-- The same tables and columns as SQLite's. Times are double precision seconds since the epoch,
-- always passed in by the runtime; no function here reads the server's clock.
-- The hot paths (claim, apply, take_event) are PL/pgSQL functions: one round trip each, and
-- every statement in them takes a fresh snapshot after the instance row is locked, so a
-- wake-up racing a transition to `waiting` is never lost under READ COMMITTED.

CREATE TABLE instances (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    workflow text NOT NULL,
    status text NOT NULL,
    params text NOT NULL,
    output text,
    error text,
    version text,
    parent_id text,
    generation integer NOT NULL DEFAULT 0,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    -- When a worker should next claim it: the due time of a queued or waiting instance,
    -- the lease expiry of a running one; NULL while paused, ended, or waiting on a signal.
    wake_at double precision,
    lease_owner text,
    lease_token text,
    crash_count integer NOT NULL DEFAULT 0,
    crashes text
) WITH (fillfactor = 85);
-- updated_at is deliberately in no index: a journal write then updates its instance row
-- in place (a HOT update), without touching any index.
CREATE INDEX instances_wake ON instances (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX instances_workflow ON instances (workflow, seq);
CREATE INDEX instances_status ON instances (status, seq);
CREATE INDEX instances_parent ON instances (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX instances_owner ON instances (lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE steps (
    instance_id text NOT NULL,
    name text NOT NULL,
    count integer NOT NULL,
    seq integer NOT NULL,
    kind text NOT NULL,
    status text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    started_at double precision,
    finished_at double precision,
    wake_at double precision,
    input text,
    output text,
    error text,
    detail text,
    PRIMARY KEY (instance_id, name, count)
);

CREATE TABLE events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id text NOT NULL,
    type text NOT NULL,
    payload text NOT NULL,
    created_at double precision NOT NULL,
    consumed_by text
);
CREATE INDEX events_pending ON events (instance_id, type, seq) WHERE consumed_by IS NULL;
CREATE INDEX events_instance ON events (instance_id);

-- The crash history of an instance with one more entry, keeping the last 20.
CREATE FUNCTION fw_crash_history(p_crashes text, p_worker text, p_expired double precision)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_agg(entry ORDER BY n)::text
    FROM (
        SELECT entry, n, count(*) OVER () AS total
        FROM jsonb_array_elements(
            coalesce(p_crashes::jsonb, '[]'::jsonb)
            || jsonb_build_array(jsonb_build_object('worker', p_worker, 'lease_expired_at', p_expired))
        ) WITH ORDINALITY AS history(entry, n)
    ) numbered
    WHERE n > total - 20
$$;

-- Make the parent runnable now if it waits for this child (ctx.parallel). The parent row is
-- locked first, so the check below sees a parent transition to `waiting` that committed
-- while this transaction waited for the lock.
CREATE FUNCTION fw_wake_parent(p_child text, p_parent text, p_now double precision)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF p_parent IS NULL THEN
        RETURN false;
    END IF;
    PERFORM 1 FROM instances WHERE id = p_parent FOR UPDATE;
    UPDATE instances SET wake_at = p_now
    WHERE id = p_parent AND status = 'waiting' AND EXISTS (
        SELECT 1 FROM steps
        WHERE instance_id = p_parent AND kind = 'child' AND status = 'waiting'
          AND detail::jsonb ->> 'child_id' = p_child
    );
    RETURN FOUND;
END
$$;

-- Claim up to p_limit runnable instances for p_owner. Tokens are p_batch:seq, so a claim whose
-- outcome was lost with its connection can be found again (see PostgresStore.claim).
-- Returns the claimed rows, whether each was taken from a dead worker, and the journal
-- (read after the claim, in a fresh snapshot) as a JSON array of arrays.
CREATE FUNCTION fw_claim(
    p_owner text, p_limit integer, p_now double precision, p_lease_until double precision,
    p_batch text
) RETURNS TABLE (
    r_seq bigint, r_id text, r_workflow text, r_status text, r_params text, r_output text,
    r_error text, r_version text, r_parent_id text, r_generation integer,
    r_created_at double precision, r_updated_at double precision, r_wake_at double precision,
    r_lease_owner text, r_crash_count integer, r_crashes text, r_token text, r_crashed boolean,
    r_steps json
) LANGUAGE plpgsql AS $$
DECLARE
    v_ids text[];
    v_crashed text[];
BEGIN
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
           i.crash_count, i.crashes, i.lease_token, i.id = ANY(coalesce(v_crashed, '{}')),
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
CREATE FUNCTION fw_apply(
    p_id text, p_token text, p_now double precision,
    p_status text, p_wake_at double precision, p_output text, p_error text,
    p_release boolean, p_version text, p_wake_on_events text[], p_wake_on_children text[],
    p_step_names text[], p_step_counts integer[], p_step_seqs integer[], p_step_kinds text[],
    p_step_statuses text[], p_step_attempts integer[], p_step_started double precision[],
    p_step_finished double precision[], p_step_wake double precision[], p_step_inputs text[],
    p_step_outputs text[], p_step_errors text[], p_step_details text[],
    p_child_ids text[], p_child_workflows text[], p_child_params text[],
    p_child_versions text[], p_child_parents text[], p_child_created double precision[]
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
    v_has_steps boolean := coalesce(cardinality(p_step_names), 0) > 0;
BEGIN
    SELECT status, parent_id, crash_count, version INTO v_current, v_parent, v_crash_count, v_version
    FROM instances WHERE id = p_id AND lease_token = p_token FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    IF v_has_steps THEN
        INSERT INTO steps AS s (instance_id, name, count, seq, kind, status, attempts, started_at,
                                finished_at, wake_at, input, output, error, detail)
        SELECT p_id, x.* FROM unnest(
            p_step_names, p_step_counts, p_step_seqs, p_step_kinds, p_step_statuses,
            p_step_attempts, p_step_started, p_step_finished, p_step_wake, p_step_inputs,
            p_step_outputs, p_step_errors, p_step_details) AS x
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
       AND coalesce(cardinality(p_child_ids), 0) = 0 THEN
        IF (v_crash_count > 0 AND v_has_steps) OR (v_version IS NULL AND p_version IS NOT NULL) THEN
            UPDATE instances SET crash_count = CASE WHEN v_has_steps THEN 0 ELSE crash_count END,
                                 version = coalesce(version, p_version)
            WHERE id = p_id;
        END IF;
        RETURN v_current;
    END IF;

    IF coalesce(cardinality(p_child_ids), 0) > 0 THEN
        INSERT INTO instances (id, workflow, status, params, version, parent_id, created_at,
                               updated_at, wake_at)
        SELECT c.id, c.workflow, 'queued', c.params, c.version, c.parent, c.created, p_now, p_now
        FROM unnest(p_child_ids, p_child_workflows, p_child_params, p_child_versions,
                    p_child_parents, p_child_created)
             AS c(id, workflow, params, version, parent, created)
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

-- Consume the oldest buffered event of p_type and journal the wait step complete with its
-- payload. An event this step already consumed is returned again, so a call replayed after
-- a lost connection does not take a second event. r_held is false when the lease is lost.
CREATE FUNCTION fw_take_event(
    p_id text, p_token text, p_type text, p_now double precision,
    p_name text, p_count integer, p_seq integer, p_kind text, p_attempts integer,
    p_started double precision, p_finished double precision, p_wake double precision,
    p_input text, p_error text, p_detail text
) RETURNS TABLE (r_held boolean, r_payload text, r_created_at double precision)
LANGUAGE plpgsql AS $$
DECLARE
    v_key text := p_name || '#' || p_count;
    v_seq bigint;
    v_payload text;
    v_created double precision;
BEGIN
    PERFORM 1 FROM instances WHERE id = p_id AND lease_token = p_token FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, NULL::text, NULL::double precision;
        RETURN;
    END IF;
    SELECT e.seq, e.payload, e.created_at INTO v_seq, v_payload, v_created
    FROM events e WHERE e.instance_id = p_id AND e.consumed_by = v_key
    ORDER BY e.seq LIMIT 1;
    IF NOT FOUND THEN
        SELECT e.seq, e.payload, e.created_at INTO v_seq, v_payload, v_created
        FROM events e
        WHERE e.instance_id = p_id AND e.type = p_type AND e.consumed_by IS NULL
        ORDER BY e.seq LIMIT 1;
        IF NOT FOUND THEN
            RETURN QUERY SELECT true, NULL::text, NULL::double precision;
            RETURN;
        END IF;
        UPDATE events SET consumed_by = v_key WHERE seq = v_seq;
    END IF;
    INSERT INTO steps AS s (instance_id, name, count, seq, kind, status, attempts, started_at,
                            finished_at, wake_at, input, output, error, detail)
    VALUES (p_id, p_name, p_count, p_seq, p_kind, 'complete', p_attempts, p_started,
            p_finished, p_wake, p_input, v_payload, p_error, p_detail)
    ON CONFLICT (instance_id, name, count) DO UPDATE SET
        seq = excluded.seq, kind = excluded.kind, status = excluded.status,
        attempts = excluded.attempts, started_at = excluded.started_at,
        finished_at = excluded.finished_at, wake_at = excluded.wake_at,
        input = excluded.input, output = excluded.output, error = excluded.error,
        detail = excluded.detail;
    UPDATE instances SET crash_count = 0, updated_at = p_now WHERE id = p_id;
    RETURN QUERY SELECT true, v_payload, v_created;
END
$$;
