-- Schema version 2: the change counter, which every write transaction and every CRL-number
-- reservation increments, so that a responder sees a commit by polling one row (SQLite's
-- PRAGMA data_version has no equivalent on a PostgreSQL standby). The statements are the
-- same text as in sqlite.sql: a fresh database and an upgraded one have the same schema.
CREATE TABLE "change_counter" (
   "id" INTEGER PRIMARY KEY CHECK ("id" = 1),
   "value" INTEGER NOT NULL
);

INSERT INTO "change_counter" ("id", "value") VALUES (1, 0);

CREATE TRIGGER change_counter_only_grows BEFORE UPDATE ON change_counter WHEN NEW.value <= OLD.value BEGIN SELECT RAISE(ABORT, 'the change counter only grows'); END;

CREATE TRIGGER change_counter_no_delete BEFORE DELETE ON change_counter BEGIN SELECT RAISE(ABORT, 'the change counter is never deleted'); END;
