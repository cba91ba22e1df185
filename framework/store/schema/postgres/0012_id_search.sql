-- fw schema version 12 (PostgreSQL): ids searched by any piece of them (Studio's q, the API's
-- search) through an index instead of reading every id.
--
-- instance_search holds each instance's seq and id, with a pg_trgm GIN index on the id (each
-- run of three characters, lower-cased), kept in step by statement triggers: an id never
-- changes, so a row is inserted once and deleted once. A separate table rather than an index
-- on instances: every update of an instance that moves it in an index (a claim, an end) would
-- add its id's trigrams to the GIN index again. A search of three characters or more reads
-- the instances whose ids hold its trigrams, then checks them with the same ILIKE as before; a
-- shorter one (no trigram in it) reads the instances newest first, as before.
--
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension (13+): a database owner
-- may create it. If this server lacks it, or the role may not create it, this step warns and
-- does nothing, and searches read the instances as before; after CREATE EXTENSION pg_trgm,
-- the next store to open applies it (PostgresStore.open).
DO $migration$
DECLARE
    v_schema text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION pg_trgm;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'fw: pg_trgm unavailable (%): id searches will read every instance',
                SQLERRM;
            RETURN;
        END;
    END IF;
    IF to_regclass('instance_search') IS NOT NULL THEN
        RETURN;
    END IF;
    SELECT n.nspname INTO v_schema
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_trgm';
    CREATE TABLE instance_search (seq bigint PRIMARY KEY, id text NOT NULL);
    CREATE FUNCTION fw_search_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        INSERT INTO instance_search (seq, id) SELECT seq, id FROM fw_new;
        RETURN NULL;
    END $fn$;
    CREATE FUNCTION fw_search_deleted() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        DELETE FROM instance_search WHERE seq IN (SELECT seq FROM fw_old);
        RETURN NULL;
    END $fn$;
    -- The triggers come before the copy: creating them locks instances against writes until
    -- this migration commits, so no instance is missed.
    CREATE TRIGGER instance_search_insert AFTER INSERT ON instances
        REFERENCING NEW TABLE AS fw_new FOR EACH STATEMENT EXECUTE FUNCTION fw_search_inserted();
    CREATE TRIGGER instance_search_delete AFTER DELETE ON instances
        REFERENCING OLD TABLE AS fw_old FOR EACH STATEMENT EXECUTE FUNCTION fw_search_deleted();
    INSERT INTO instance_search (seq, id) SELECT seq, id FROM instances;
    EXECUTE format(
        'CREATE INDEX instance_search_trgm ON instance_search USING gin (id %I.gin_trgm_ops)',
        v_schema
    );
END
$migration$;
