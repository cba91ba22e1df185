-- fw schema version 11 (SQLite): ids searched by any piece of them (Studio's q, the API's
-- search) through an index instead of reading every id.
-- requires: fts5-trigram
--
-- instance_search is an FTS5 index of the ids by trigram (each run of three characters,
-- case folded), over the instances table itself (content=instances: it stores no copy of the
-- ids), kept in step by triggers. An id never changes, so inserts and deletes are all it
-- sees. A search of three characters or more reads the instances whose ids hold every
-- trigram of it in sequence, then checks them with the same LIKE as before; a shorter search
-- (no trigram in it) reads the instances newest first, as before. SQLite without FTS5's
-- trigram tokenizer (older than 3.34) skips this step and searches that way; the store
-- applies it when opened by a SQLite that has it.
CREATE VIRTUAL TABLE instance_search USING fts5(
    id, content='instances', content_rowid='seq', tokenize='trigram', columnsize=0
);
INSERT INTO instance_search (instance_search) VALUES ('rebuild');
CREATE TRIGGER instance_search_insert AFTER INSERT ON instances BEGIN
    INSERT INTO instance_search (rowid, id) VALUES (NEW.seq, NEW.id);
END;
CREATE TRIGGER instance_search_delete AFTER DELETE ON instances BEGIN
    INSERT INTO instance_search (instance_search, rowid, id) VALUES ('delete', OLD.seq, OLD.id);
END;
