-- fw schema version 5 (PostgreSQL): the ctx.log lines of instances (runtime/logs.py), the
-- last p_limit (1,000) of each kept, deleted with their instance by prune. (run, line) names
-- a line within the claim that wrote it, so a commit replayed after a lost connection writes
-- each line once.
CREATE TABLE logs (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id text NOT NULL,
    run text NOT NULL,
    line integer NOT NULL,
    at double precision NOT NULL,
    level text NOT NULL,
    step text,
    step_count integer,
    message text NOT NULL,
    fields text,
    UNIQUE (run, line)
);
CREATE INDEX logs_instance ON logs (instance_id, seq);

-- Keep the lines a commit carries (a JSON array of [run, line, at, level, step, step_count,
-- message, fields]) and drop all but the last p_limit lines of the instance. Called in the
-- statement that applies the commit, once fw_apply_v2 has found the lease held.
CREATE FUNCTION fw_keep_logs(p_instance text, p_logs json, p_limit integer)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO logs (instance_id, run, line, at, level, step, step_count, message, fields)
    SELECT p_instance, l ->> 0, (l ->> 1)::integer, (l ->> 2)::double precision, l ->> 3,
           l ->> 4, (l ->> 5)::integer, l ->> 6, l ->> 7
    FROM json_array_elements(p_logs) AS l
    ON CONFLICT (run, line) DO NOTHING;
    DELETE FROM logs WHERE instance_id = p_instance AND seq <= (
        SELECT seq FROM logs WHERE instance_id = p_instance
        ORDER BY seq DESC OFFSET p_limit LIMIT 1
    );
    RETURN true;
END
$$;
