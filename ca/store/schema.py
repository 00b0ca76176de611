"""The database schema, created with sqlite-utils; SCHEMA_VERSION names it."""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1


def create_schema(conn: sqlite3.Connection) -> None:
    """Creates every table, index and trigger in an empty database."""
    import sqlite_utils  # imported here: it is slow to import and only schema work needs it

    db = sqlite_utils.Database(conn)
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["certificates"].create(
        {
            "serial": str,
            "issuer": str,
            "profile": str,
            "subject": str,
            "subscriber_id": str,
            "not_before": str,
            "not_after": str,
            "status": str,
            "issued_at": str,
            "fingerprint_sha256": str,
            "spki_sha256": str,
            "der": bytes,
            "revoked_at": str,
            "revocation_reason": str,
            "invalidity_date": str,
            "reported_at": str,
            "hold_origin": str,
            # When the revocation status last changed, and the ledger seq of that change:
            # a delta CRL lists what changed after its base CRL's seq.
            "status_changed_at": str,
            "changed_seq": int,
        },
        pk="serial",
        not_null=["issuer", "profile", "subject", "not_before", "not_after", "status", "spki_sha256"],
    )
    db["certificates"].create_index(["fingerprint_sha256"], unique=True)
    # (spki_sha256, status, not_after) so the duplicate-key check is an index lookup, not a scan of valid rows.
    db["certificates"].create_index(["spki_sha256", "status", "not_after"])
    db["certificates"].create_index(["status", "not_after"])
    db["certificates"].create_index(["subscriber_id"])
    # Covers the CRL query: a million entries are read from the index alone, in its order.
    db["certificates"].create_index(
        ["issuer", "status", "not_after", "serial", "revoked_at", "revocation_reason", "invalidity_date"]
    )
    db["certificates"].create_index(["issuer", "changed_seq"])
    # The CA's current certificates and delegated signers by role: root, issuing, ocsp:issuing, ...
    db["authorities"].create({"role": str, "serial": str, "key_file": str}, pk="role")
    db["customers"].create(
        {"id": str, "name": str, "status": str, "created_at": str, "status_changed_at": str, "terminate_at": str},
        pk="id",
        not_null=["name", "status", "created_at"],
    )
    db["subscribers"].create(
        {
            "id": str,
            "customer_id": str,
            "role": str,
            "name": str,
            "status": str,
            "created_at": str,
            "created_by": str,
            # Wrong enrollment codes, counted per subscriber for rate limiting.
            "failed_attempts": int,
            "locked_until": str,
        },
        pk="id",
        foreign_keys=[("customer_id", "customers", "id")],
        not_null=["customer_id", "role", "name", "status", "created_at"],
        defaults={"failed_attempts": 0},
    )
    db["subscribers"].create_index(["customer_id"])
    db["enrollments"].create(
        {
            "id": int,
            "subscriber_id": str,
            "kind": str,
            # The code's public first part finds the row; the whole code is kept as a hash only.
            "lookup": str,
            "code_hash": str,
            "created_at": str,
            "expires_at": str,
            "created_by": str,
            "redeemed_at": str,
            "redeemed_serial": str,
            "closed_at": str,
            "expiry_recorded": int,
        },
        pk="id",
        foreign_keys=[("subscriber_id", "subscribers", "id")],
        not_null=["subscriber_id", "kind", "lookup", "code_hash", "created_at", "expires_at"],
        defaults={"expiry_recorded": 0},
    )
    db["enrollments"].create_index(["lookup"], unique=True)
    db["enrollments"].create_index(["expires_at"])
    db["enrollments"].create_index(["subscriber_id"])
    db["crls"].create(
        {
            "id": int,
            "issuer": str,
            "number": int,
            "kind": str,
            "base_number": int,
            "this_update": str,
            "next_update": str,
            "entries": int,
            "state": str,
            "published_at": str,
            "ledger_seq": int,
            "sha256": str,
        },
        pk="id",
        not_null=["issuer", "number", "kind", "state"],
    )
    db["crls"].create_index(["issuer", "number"], unique=True)
    # Pre-signed OCSP responses, one per certificate and CertID hash algorithm.
    db["ocsp_responses"].create(
        {
            "serial": str,
            "hash_algorithm": str,
            "issuer": str,
            "der": bytes,
            "this_update": str,
            "next_update": str,
        },
        pk=("serial", "hash_algorithm"),
        not_null=["issuer", "der", "this_update", "next_update"],
    )
    db["ocsp_responses"].create_index(["this_update"])
    db["officers"].create({"login": str, "role": str, "added_at": str, "added_by": str}, pk="login")
    db["incidents"].create(
        {
            "id": int,
            "subscriber_id": str,
            "serial": str,
            "kind": str,
            "reason": str,
            "received_at": str,
            "suspected_since": str,
            "officer": str,
            "recorded_at": str,
            "revoked_at": str,
            "suspended_customer": int,
            "note": str,
        },
        pk="id",
    )
    db["incidents"].create_index(["subscriber_id"])
    db["ledger"].create(
        {
            "seq": int,
            "time": str,
            "actor": str,
            "action": str,
            "serial": str,
            "subscriber": str,
            "customer": str,
            "details": str,
            "prev_hash": str,
            "hash": str,
        },
        pk="seq",
        not_null=["time", "actor", "action", "serial", "subscriber", "customer", "details", "prev_hash", "hash"],
    )
    db["ledger"].create_index(["time"])
    db["ledger"].create_index(["action"])
    db["checkpoints"].create({"seq": int, "head_hash": str, "time": str, "signature": bytes, "signer": str}, pk="seq")
    # The ledger is append-only by construction; these triggers make an accidental
    # UPDATE or DELETE fail loudly instead of silently breaking the chain.
    conn.execute(
        "CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger "
        "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
    )
    conn.execute(
        "CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger "
        "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
    )
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
