-- Schema version 3: the ledger indexed by serial, so that before anything is signed a
-- certificate's row is checked against its last status event in one index lookup.
CREATE INDEX "idx_ledger_serial_seq"
    ON "ledger" ("serial", "seq");
