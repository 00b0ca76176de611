-- Kinko's SQLite schema, complete, for a new database (the current SCHEMA_VERSION).
-- A database made earlier reaches the same schema through migrations/sqlite/NNNN_*.sql:
-- tests/integration/test_migrations.py compares the two, so change both together.
-- Applied one statement at a time inside the creating transaction; the code then writes
-- meta.schema_version. Comments stay between statements: SQLite keeps a statement's text
-- in sqlite_master, which must match what the migrations produce.

CREATE TABLE "meta" (
   "key" TEXT PRIMARY KEY,
   "value" TEXT
);

-- The serial registry. status_changed_at and changed_seq: when the revocation status last
-- changed, and the ledger seq of that change (a delta CRL lists what changed after its base's seq).
CREATE TABLE "certificates" (
   "serial" TEXT PRIMARY KEY,
   "issuer" TEXT NOT NULL,
   "profile" TEXT NOT NULL,
   "subject" TEXT NOT NULL,
   "subscriber_id" TEXT,
   "not_before" TEXT NOT NULL,
   "not_after" TEXT NOT NULL,
   "status" TEXT NOT NULL,
   "issued_at" TEXT,
   "fingerprint_sha256" TEXT,
   "spki_sha256" TEXT NOT NULL,
   "der" BLOB,
   "revoked_at" TEXT,
   "revocation_reason" TEXT,
   "invalidity_date" TEXT,
   "reported_at" TEXT,
   "hold_origin" TEXT,
   "status_changed_at" TEXT,
   "changed_seq" INTEGER
);

CREATE UNIQUE INDEX "idx_certificates_fingerprint_sha256"
    ON "certificates" ("fingerprint_sha256");

-- (spki_sha256, status, not_after) so the duplicate-key check is an index lookup, not a scan of valid rows.
CREATE INDEX "idx_certificates_spki_sha256_status_not_after"
    ON "certificates" ("spki_sha256", "status", "not_after");

CREATE INDEX "idx_certificates_status_not_after"
    ON "certificates" ("status", "not_after");

CREATE INDEX "idx_certificates_subscriber_id"
    ON "certificates" ("subscriber_id");

-- Covers the CRL query: a million entries are read from the index alone, in its order.
CREATE INDEX "idx_certificates_issuer_status_not_after_serial_revoked_at_revocation_reason_invalidity_date"
    ON "certificates" ("issuer", "status", "not_after", "serial", "revoked_at", "revocation_reason", "invalidity_date");

CREATE INDEX "idx_certificates_issuer_changed_seq"
    ON "certificates" ("issuer", "changed_seq");

-- The CA's current certificates and delegated signers by role: root, issuing, ocsp:issuing, ...
CREATE TABLE "authorities" (
   "role" TEXT PRIMARY KEY,
   "serial" TEXT,
   "key_file" TEXT
);

CREATE TABLE "customers" (
   "id" TEXT PRIMARY KEY,
   "name" TEXT NOT NULL,
   "status" TEXT NOT NULL,
   "created_at" TEXT NOT NULL,
   "status_changed_at" TEXT,
   "terminate_at" TEXT
);

-- failed_attempts, locked_until: no longer written (wrong codes are now counted per client, from the
-- ledger's enrollment.code-refused events, so that nobody can lock a holder out); kept for old rows.
CREATE TABLE "subscribers" (
   "id" TEXT PRIMARY KEY,
   "customer_id" TEXT NOT NULL REFERENCES "customers"("id"),
   "role" TEXT NOT NULL,
   "name" TEXT NOT NULL,
   "status" TEXT NOT NULL,
   "created_at" TEXT NOT NULL,
   "created_by" TEXT,
   "failed_attempts" INTEGER DEFAULT 0,
   "locked_until" TEXT
, "email" TEXT);
-- (email written as SQLite's ALTER TABLE ... ADD COLUMN of migration 0004 leaves it, so that a
-- fresh database and an upgraded one have the same schema text.)

CREATE INDEX "idx_subscribers_customer_id"
    ON "subscribers" ("customer_id");

-- The code's public first part (lookup) finds the row; the whole code is kept as a hash only.
CREATE TABLE "enrollments" (
   "id" INTEGER PRIMARY KEY,
   "subscriber_id" TEXT NOT NULL REFERENCES "subscribers"("id"),
   "kind" TEXT NOT NULL,
   "lookup" TEXT NOT NULL,
   "code_hash" TEXT NOT NULL,
   "created_at" TEXT NOT NULL,
   "expires_at" TEXT NOT NULL,
   "created_by" TEXT,
   "redeemed_at" TEXT,
   "redeemed_serial" TEXT,
   "closed_at" TEXT,
   "expiry_recorded" INTEGER DEFAULT 0
);

CREATE UNIQUE INDEX "idx_enrollments_lookup"
    ON "enrollments" ("lookup");

CREATE INDEX "idx_enrollments_expires_at"
    ON "enrollments" ("expires_at");

CREATE INDEX "idx_enrollments_subscriber_id"
    ON "enrollments" ("subscriber_id");

CREATE TABLE "crls" (
   "id" INTEGER PRIMARY KEY,
   "issuer" TEXT NOT NULL,
   "number" INTEGER NOT NULL,
   "kind" TEXT NOT NULL,
   "base_number" INTEGER,
   "this_update" TEXT,
   "next_update" TEXT,
   "entries" INTEGER,
   "state" TEXT NOT NULL,
   "published_at" TEXT,
   "ledger_seq" INTEGER,
   "sha256" TEXT
);

CREATE UNIQUE INDEX "idx_crls_issuer_number"
    ON "crls" ("issuer", "number");

-- Pre-signed OCSP responses, one per certificate and CertID hash algorithm.
CREATE TABLE "ocsp_responses" (
   "serial" TEXT,
   "hash_algorithm" TEXT,
   "issuer" TEXT NOT NULL,
   "der" BLOB NOT NULL,
   "this_update" TEXT NOT NULL,
   "next_update" TEXT NOT NULL,
   PRIMARY KEY ("serial", "hash_algorithm")
);

CREATE INDEX "idx_ocsp_responses_this_update"
    ON "ocsp_responses" ("this_update");

CREATE TABLE "officers" (
   "login" TEXT PRIMARY KEY,
   "role" TEXT,
   "added_at" TEXT,
   "added_by" TEXT
);

CREATE TABLE "incidents" (
   "id" INTEGER PRIMARY KEY,
   "subscriber_id" TEXT,
   "serial" TEXT,
   "kind" TEXT,
   "reason" TEXT,
   "received_at" TEXT,
   "suspected_since" TEXT,
   "officer" TEXT,
   "recorded_at" TEXT,
   "revoked_at" TEXT,
   "suspended_customer" INTEGER,
   "note" TEXT
);

CREATE INDEX "idx_incidents_subscriber_id"
    ON "incidents" ("subscriber_id");

CREATE TABLE "ledger" (
   "seq" INTEGER PRIMARY KEY,
   "time" TEXT NOT NULL,
   "actor" TEXT NOT NULL,
   "action" TEXT NOT NULL,
   "serial" TEXT NOT NULL,
   "subscriber" TEXT NOT NULL,
   "customer" TEXT NOT NULL,
   "details" TEXT NOT NULL,
   "prev_hash" TEXT NOT NULL,
   "hash" TEXT NOT NULL
);

CREATE INDEX "idx_ledger_time"
    ON "ledger" ("time");

CREATE INDEX "idx_ledger_action"
    ON "ledger" ("action");

-- A certificate's events by serial: signing paths check a row against its last status event.
CREATE INDEX "idx_ledger_serial_seq"
    ON "ledger" ("serial", "seq");

CREATE TABLE "checkpoints" (
   "seq" INTEGER PRIMARY KEY,
   "head_hash" TEXT,
   "time" TEXT,
   "signature" BLOB,
   "signer" TEXT
);

-- The ledger is append-only by construction; these triggers make an accidental
-- UPDATE or DELETE fail loudly instead of silently breaking the chain.
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;

CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;

-- A number that grows with every Kinko commit (schema version 2): responders poll it to see
-- a change at once, also on a replica, where no notification reaches them.
CREATE TABLE "change_counter" (
   "id" INTEGER PRIMARY KEY CHECK ("id" = 1),
   "value" INTEGER NOT NULL
);

INSERT INTO "change_counter" ("id", "value") VALUES (1, 0);

-- A counter set back could land on a value a responder last saw, hiding a change from it.
CREATE TRIGGER change_counter_only_grows BEFORE UPDATE ON change_counter WHEN NEW.value <= OLD.value BEGIN SELECT RAISE(ABORT, 'the change counter only grows'); END;

CREATE TRIGGER change_counter_no_delete BEFORE DELETE ON change_counter BEGIN SELECT RAISE(ABORT, 'the change counter is never deleted'); END;
