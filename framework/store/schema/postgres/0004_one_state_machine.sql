-- fw schema version 4 (PostgreSQL): the state machine in one place. The version 1 functions,
-- kept for workers of an older release during a rolling deploy, were near copies of their
-- version 2 successors and drifted (fw_apply left a pending control request on an instance
-- that ended). Each is replaced by a thin adapter that passes its arguments to the version 2
-- function, so the rules (framework/store/states.py, checked row by row against fw_apply_v2
-- by tests/store/test_states_agree.py) live in one PL/pgSQL function. Signatures and results
-- are unchanged: an older worker calls them as before.
--
-- From here on a migration that changes a rule replaces just that function
-- (CREATE OR REPLACE FUNCTION), and copies nothing.

-- fw_claim: fw_claim_v2's rows without the control column.
CREATE OR REPLACE FUNCTION fw_claim(
    p_owner text, p_limit integer, p_now double precision, p_lease_until double precision,
    p_batch text
) RETURNS TABLE (
    r_seq bigint, r_id text, r_workflow text, r_status text, r_params text, r_output text,
    r_error text, r_version text, r_parent_id text, r_generation integer,
    r_created_at double precision, r_updated_at double precision, r_wake_at double precision,
    r_lease_owner text, r_crash_count integer, r_crashes text, r_token text, r_crashed boolean,
    r_steps json
) LANGUAGE sql AS $$
    SELECT c.r_seq, c.r_id, c.r_workflow, c.r_status, c.r_params, c.r_output, c.r_error,
           c.r_version, c.r_parent_id, c.r_generation, c.r_created_at, c.r_updated_at,
           c.r_wake_at, c.r_lease_owner, c.r_crash_count, c.r_crashes, c.r_token, c.r_crashed,
           c.r_steps
    FROM fw_claim_v2(p_owner, p_limit, p_now, p_lease_until, p_batch) AS c
$$;

-- fw_apply: its 19 arrays become fw_apply_v2's two JSON documents.
CREATE OR REPLACE FUNCTION fw_apply(
    p_id text, p_token text, p_now double precision,
    p_status text, p_wake_at double precision, p_output text, p_error text,
    p_release boolean, p_version text, p_wake_on_events text[], p_wake_on_children text[],
    p_step_names text[], p_step_counts integer[], p_step_seqs integer[], p_step_kinds text[],
    p_step_statuses text[], p_step_attempts integer[], p_step_started double precision[],
    p_step_finished double precision[], p_step_wake double precision[], p_step_inputs text[],
    p_step_outputs text[], p_step_errors text[], p_step_details text[],
    p_child_ids text[], p_child_workflows text[], p_child_params text[],
    p_child_versions text[], p_child_parents text[], p_child_created double precision[]
) RETURNS text LANGUAGE sql AS $$
    SELECT fw_apply_v2(
        p_id, p_token, p_now, p_status, p_wake_at, p_output, p_error, p_release, p_version,
        p_wake_on_events, p_wake_on_children,
        (SELECT jsonb_agg(jsonb_build_array(
                    s.name, s.count, s.seq, s.kind, s.status, s.attempts, s.started,
                    s.finished, s.wake, s.input, s.output, s.error, s.detail)
                ORDER BY s.n)
         FROM unnest(p_step_names, p_step_counts, p_step_seqs, p_step_kinds, p_step_statuses,
                     p_step_attempts, p_step_started, p_step_finished, p_step_wake,
                     p_step_inputs, p_step_outputs, p_step_errors, p_step_details)
              WITH ORDINALITY AS s(name, count, seq, kind, status, attempts, started, finished,
                                   wake, input, output, error, detail, n)),
        (SELECT jsonb_agg(jsonb_build_array(
                    c.id, c.workflow, c.params, c.version, c.parent, c.created) ORDER BY c.n)
         FROM unnest(p_child_ids, p_child_workflows, p_child_params, p_child_versions,
                     p_child_parents, p_child_created)
              WITH ORDINALITY AS c(id, workflow, params, version, parent, created, n))
    )
$$;
