-- fw schema version 7 (PostgreSQL): how many runs an instance took and an instance's own
-- retention in seconds (create(retention=...); NULL: its workflow's or the app's), with an
-- index for pruning the instances that have one.
--
-- A run is a claim: the claim functions give the instance a new lease token, and a trigger
-- counts each new token, so every claim function (fw_claim_v2 and any successor) counts
-- runs without repeating the rule.
ALTER TABLE instances ADD COLUMN runs integer NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN retention double precision;
CREATE INDEX instances_own_retention ON instances (updated_at) WHERE retention IS NOT NULL;

CREATE FUNCTION fw_count_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.runs := OLD.runs + 1;
    RETURN NEW;
END
$$;

CREATE TRIGGER instances_count_runs BEFORE UPDATE OF lease_token ON instances
FOR EACH ROW WHEN (NEW.lease_token IS NOT NULL AND NEW.lease_token IS DISTINCT FROM OLD.lease_token)
EXECUTE FUNCTION fw_count_run();
