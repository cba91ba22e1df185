-- fw schema version 2 (SQLite): a pending control request on an instance
-- ('terminate': run its compensation, then end it terminated).
ALTER TABLE instances ADD COLUMN control TEXT;
