"""Issue 10, items 3-5: exports no one can forge offline, anchors outside the CA, and the
lifecycle of the audit and OCSP signers. Each attack is done as an attacker would (files
forged with real keys, SQL with the append-only triggers dropped) and shows the refusal or
the detection, and that nothing changed."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kinko.ca import audit, cms, config, ledger
from kinko.ca.clock import FixedClock, to_text
from kinko.ca.errors import PolicyError
from kinko.ca.home import Home
from kinko.ca.keys import FileKey
from kinko.ca.lifecycle import Kinko
from kinko.ca.serials import format_serial
from tests.conftest import make_csr, make_key, raw_database, row_counts, table_rows, unguard
from tests.integration.test_ledger_audit import query, rechain
from tests.integration.test_tamper import TABLES

# ---------------------------------------------------------------- helpers


def root_pem(home: Home) -> Path:
    return home.public_dir / "ca" / "root.pem"


def one_line_error(result: Any) -> str:
    """A refusal: exit 1, nothing on stdout, one `kinko: error:` line on stderr."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    line = str(result.stderr)
    assert line.startswith("kinko: error: ") and line.count("\n") == 1, line
    return line


def export(run_cli: Any, home: Home, out: Path, *options: Any) -> dict[str, Any]:
    result = run_cli("--json", "--home", home.path, "ledger", "export", "--format", "csv", "--out", out, *options)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def verify_offline(run_cli: Any, out: Path, *options: Any) -> Any:
    """`kinko ledger verify --export FILE ...` with no home at all."""
    return run_cli("ledger", "verify", "--export", out, *options)


def openssl_cms_verify(out: Path, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """The README's `openssl cms -verify`, with the auditor's own root as the only anchor."""
    command = ["openssl", "cms", "-verify", "-binary", "-content", str(out), "-inform", "DER", "-in", f"{out}.sig"]
    command += ["-CAfile", str(root), "-certfile", f"{out}.chain.pem", *extra, "-out", "/dev/null"]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)


def truncate(path: Path, rows: int) -> None:
    """Drops the last `rows` lines of an export, as a forger hiding recent events would."""
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-rows]))


def sign_as(
    path: Path, key: Any, certificate: x509.Certificate, chain: list[x509.Certificate], now: dt.datetime
) -> None:
    """Writes FILE.sig over the file as it is now, with a key the forger holds."""
    path.with_name(path.name + ".sig").write_bytes(
        cms.sign_detached(cms.file_sha256(path), FileKey(key), certificate, chain, now)
    )


def issuers(home: Home) -> list[x509.Certificate]:
    return [home.ca_certificate("issuing"), home.ca_certificate("root")]


def some_history(kinko: Kinko, clock: FixedClock) -> list[str]:
    serials = []
    for name in ("山田 太郎", "佐藤 花子"):
        clock.advance(minutes=1)
        serials.append(kinko.issue(make_csr(), name=name).record.serial)
    clock.advance(minutes=1)
    kinko.revoke(serials[0], "superseded")
    return serials


def write_export_as(home: Home, out: Path, key: Any, certificate: x509.Certificate, now: dt.datetime) -> None:
    """An export of the whole ledger as it stands, signed with a key the forger holds, with the
    companions Kinko writes (chain, head with a checkpoint signed by that key)."""
    store = Home(home.path).readonly_store
    head_seq, head_hash = store.ledger_head()
    with open(out, "w", encoding="utf-8", newline="") as handle:
        handle.write(ledger.CSV_HEADER)
        handle.writelines(store.ledger_export_lines("csv", None, None, None, None))
    sign_as(out, key, certificate, issuers(home), now)
    out.with_name(out.name + ".chain.pem").write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in issuers(home))
    )
    stamp = to_text(now) or ""
    signature = key.sign(ledger.checkpoint_message(head_seq, head_hash, stamp), ec.ECDSA(hashes.SHA256()))
    body = {
        "format": audit.HEAD_FORMAT,
        "export": out.name,
        "export_sha256": cms.file_sha256(out).hex(),
        "seq": head_seq,
        "head_hash": head_hash,
        "checkpoint": {
            "time": stamp,
            "signer": format_serial(certificate.serial_number),
            "signature": signature.hex(),
            "certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        },
    }
    out.with_name(out.name + ".head.json").write_text(json.dumps(body), encoding="utf-8")


def forge_sealed_event(home: Home, key: Any, signer: str, when: str) -> int:
    """Appends one event and a checkpoint over it signed with `key`, straight into SQLite."""
    conn = raw_database(home)
    try:
        conn.executescript(unguard(home))
        seq, prev = conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        row = (seq + 1, when, "mallory", "certificate.released", "", "", "", "{}")
        digest = ledger.chain_hash(prev, ledger.canonical(*row))
        conn.execute(
            "INSERT INTO ledger (seq, time, actor, action, serial, subscriber, customer, details, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*row, prev, digest),
        )
        signature = key.sign(ledger.checkpoint_message(seq + 1, digest, when), ec.ECDSA(hashes.SHA256()))
        conn.execute(
            "INSERT INTO checkpoints (seq, head_hash, time, signature, signer) VALUES (?, ?, ?, ?, ?)",
            (seq + 1, digest, when, signature, signer),
        )
        conn.commit()
    finally:
        conn.close()
    return int(seq) + 1


def audit_key(home: Home) -> Any:
    """The current audit signer's private key, read from keys/ as an insider with the service account would."""
    _serial, key_file = Home(home.path).store.authority("audit") or ("", "")
    return serialization.load_pem_private_key((home.keys_dir / key_file).read_bytes(), None)


def table_snapshot(home: Home) -> dict[str, list[tuple[Any, ...]]]:
    return {t: [tuple(row.values()) for row in table_rows(home, t)] for t in TABLES}


def set_config(home: Home, key: str, value: Any) -> None:
    text = home.config_file.read_text(encoding="utf-8")
    home.config_file.write_text(config.set_value(text, key, value), encoding="utf-8")


# ---------------------------------------------------------------- 3. exports that cannot be forged offline


def test_export_verification_needs_the_auditors_own_anchor(home: Home, kinko: Kinko, clock, run_cli, tmp_path) -> None:
    some_history(kinko, clock)
    out = tmp_path / "ledger.csv"
    export(run_cli, home, out)
    line = one_line_error(verify_offline(run_cli, out))
    assert "--ca-file ROOT.pem or --root-fingerprint SHA256" in line
    # Not even when the chain file beside it is the genuine one, and not for an unsigned file.
    Path(f"{out}.sig").unlink()
    assert "--ca-file" in one_line_error(verify_offline(run_cli, out, "--allow-unsigned"))


def test_export_verifies_against_the_root_file_or_its_fingerprint(
    home: Home, kinko: Kinko, clock, run_cli, tmp_path
) -> None:
    some_history(kinko, clock)
    out = tmp_path / "ledger.csv"
    export(run_cli, home, out)
    by_file = verify_offline(run_cli, out, "--ca-file", root_pem(home))
    assert by_file.exit_code == 0, by_file.output
    assert "signed by CN=" in by_file.stdout and "Ledger Audit" in by_file.stdout
    fingerprint = home.ca_certificate("root").fingerprint(hashes.SHA256()).hex().upper()
    with_colons = ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2))
    by_print = verify_offline(run_cli, out, "--root-fingerprint", with_colons)
    assert by_print.exit_code == 0, by_print.output
    wrong = verify_offline(run_cli, out, "--root-fingerprint", "AB" * 32)
    assert "no self-signed certificate with SHA-256 fingerprint" in one_line_error(wrong)
    assert "64 hex digits" in one_line_error(verify_offline(run_cli, out, "--root-fingerprint", "xyz"))


def _self_made_ca(subject_like: x509.Certificate, signer_like: x509.Certificate, now: dt.datetime) -> tuple[Any, ...]:
    """A forger's own root with the real root's name, and a signer copying the audit signer's name and serial."""
    root_key, signer_key = make_key(), make_key()
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=365)
    root = (
        x509.CertificateBuilder()
        .subject_name(subject_like.subject)
        .issuer_name(subject_like.subject)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    signer = (
        x509.CertificateBuilder()
        .subject_name(signer_like.subject)
        .issuer_name(root.subject)
        .public_key(signer_key.public_key())
        .serial_number(signer_like.serial_number)
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(root_key, hashes.SHA256())
    )
    return root, signer, signer_key


def test_export_signed_with_a_self_made_chain_is_refused(home: Home, kinko: Kinko, clock, run_cli, tmp_path) -> None:
    some_history(kinko, clock)
    out = tmp_path / "ledger.csv"
    export(run_cli, home, out)
    truncate(out, 2)
    root, signer, key = _self_made_ca(home.ca_certificate("root"), home.ca_certificate("audit"), clock.now())
    sign_as(out, key, signer, [root], clock.now())
    Path(f"{out}.chain.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    forged = bytes(out.read_bytes())

    assert "signature" in one_line_error(verify_offline(run_cli, out, "--ca-file", root_pem(home)))
    genuine = home.ca_certificate("root").fingerprint(hashes.SHA256()).hex()
    # The forged files carry no certificate with the real root's fingerprint: nothing to anchor to.
    assert "no self-signed certificate with SHA-256 fingerprint" in one_line_error(
        verify_offline(run_cli, out, "--root-fingerprint", genuine)
    )
    refused = openssl_cms_verify(out, root_pem(home))
    assert refused.returncode != 0 and "Verification successful" not in refused.stdout + refused.stderr
    assert out.read_bytes() == forged  # verification changed nothing


def test_export_resigned_by_a_client_certificate_of_the_same_ca_is_refused(
    home: Home, kinko: Kinko, clock, run_cli, tmp_path
) -> None:
    """The attack of issue 10: a customer's client certificate re-signed a truncated export, and it verified."""
    some_history(kinko, clock)
    customer_key = make_key()
    customer = kinko.issue(make_csr(customer_key), name="顧客 一郎")
    certificate = x509.load_pem_x509_certificate(customer.pem.encode())
    out = tmp_path / "ledger.csv"
    export(run_cli, home, out)
    truncate(out, 3)
    sign_as(out, customer_key, certificate, issuers(home), clock.now())
    line = one_line_error(verify_offline(run_cli, out, "--ca-file", root_pem(home)))
    assert f"{customer.record.serial} is not an audit signer the ledger appoints" in line
    # openssl's purpose check (smimesign) refuses it too: the client certificate's EKU is clientAuth only.
    refused = openssl_cms_verify(out, root_pem(home), "-purpose", "smimesign")
    assert refused.returncode != 0, refused.stdout


def test_unsigned_export_fails_unless_allowed(home: Home, kinko: Kinko, clock, run_cli, tmp_path) -> None:
    some_history(kinko, clock)
    out = tmp_path / "ledger.csv"
    export(run_cli, home, out)
    Path(f"{out}.sig").unlink()
    line = one_line_error(verify_offline(run_cli, out, "--ca-file", root_pem(home)))
    assert "is unsigned" in line and "--allow-unsigned" in line
    allowed = verify_offline(run_cli, out, "--ca-file", root_pem(home), "--allow-unsigned")
    assert allowed.exit_code == 0, allowed.output
    assert "unsigned: checked row by row" in allowed.stdout


def test_truncated_export_with_its_old_signature_fails(home: Home, kinko: Kinko, clock, run_cli, tmp_path) -> None:
    some_history(kinko, clock)
    out = tmp_path / "ledger.csv"
    export(run_cli, home, out)
    truncate(out, 1)
    assert "does not match its signature" in one_line_error(verify_offline(run_cli, out, "--ca-file", root_pem(home)))


def test_readme_openssl_command_verifies_with_the_auditors_own_root(
    home: Home, kinko: Kinko, clock, run_cli, tmp_path, passphrase_file
) -> None:
    """The README's command, run for real; the purpose check it names holds for the audit-signer profile."""
    from kinko.ca.hierarchy import InitOptions, create_home
    from kinko.ca.officers import current_login

    some_history(kinko, clock)
    out = tmp_path / "ledger.csv"
    export(run_cli, home, out)
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    shutil.copy(root_pem(home), auditor / "root.pem")

    def openssl(root: Path) -> subprocess.CompletedProcess[str]:
        return openssl_cms_verify(out, root, "-purpose", "smimesign")

    checked = openssl(auditor / "root.pem")
    assert checked.returncode == 0 and "Verification successful" in checked.stdout + checked.stderr, checked.stderr
    other = create_home(
        tmp_path / "other", InitOptions(organization="Other", passphrase_file=passphrase_file), clock, current_login()
    )
    assert openssl(root_pem(other)).returncode != 0
    signer = home.ca_certificate("audit")
    usage = signer.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment
    with pytest.raises(x509.ExtensionNotFound):
        signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage)


# ---------------------------------------------------------------- 4. heads and anchors


def test_signed_export_records_its_head(home: Home, kinko: Kinko, clock, run_cli, tmp_path) -> None:
    some_history(kinko, clock)
    head_seq, head_hash = Home(home.path).store.ledger_head()
    out = tmp_path / "ledger.csv"
    answer = export(run_cli, home, out)
    assert answer["head"] == f"{out}.head.json"
    head = audit.read_head(out)
    assert (head.seq, head.head_hash) == (head_seq, head_hash)
    (stored,) = query(home, "SELECT time, signature, signer FROM checkpoints WHERE seq = ?", (head_seq,))
    assert (head.time, head.signature, head.signer) == stored
    assert head.certificate == home.ca_certificate("audit")
    head.certificate.public_key().verify(head.signature, head.message(), ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg, union-attr]
    assert Path(f"{out}.head.json").stat().st_mode & 0o777 == 0o644
    # The export is an event after the head: the recorded head is the ledger the file holds.
    assert query(home, "SELECT action FROM ledger WHERE seq = ?", (head_seq + 1,)) == [("ledger.exported",)]


def test_a_head_file_that_does_not_belong_is_refused(home: Home, kinko: Kinko, clock, run_cli, tmp_path) -> None:
    some_history(kinko, clock)
    earlier = tmp_path / "earlier.csv"
    export(run_cli, home, earlier)
    clock.advance(minutes=1)
    kinko.issue(make_csr(), name="後藤 三郎")
    out = tmp_path / "ledger.csv"
    export(run_cli, home, out)
    shutil.copy(f"{earlier}.head.json", f"{out}.head.json")
    assert "do not belong together" in one_line_error(verify_offline(run_cli, out, "--ca-file", root_pem(home)))
    data = json.loads(Path(f"{earlier}.head.json").read_text())
    data["checkpoint"]["time"] = "2020-01-01T00:00:00Z"
    Path(f"{earlier}.head.json").write_text(json.dumps(data))
    assert "does not verify" in one_line_error(run_cli("--home", home.path, "ledger", "verify", "--anchor", earlier))


def test_rollback_to_an_earlier_checkpoint_fails_against_an_anchor(
    home: Home, kinko: Kinko, clock, run_cli, tmp_path
) -> None:
    some_history(kinko, clock)
    first = tmp_path / "first.csv"
    export(run_cli, home, first)
    rollback_to = Home(home.path).store.last_checkpoint_seq()
    clock.advance(minutes=1)
    serial = kinko.issue(make_csr(), name="後藤 三郎").record.serial
    kinko.revoke(serial, "key-compromise")
    second = tmp_path / "second.csv"
    export(run_cli, home, second)
    anchor_seq = audit.read_head(second).seq

    ok = run_cli("--home", home.path, "ledger", "verify", "--anchor", first, "--anchor", second)
    assert ok.exit_code == 0, ok.output
    assert f"extends anchor seq {anchor_seq}" in ok.stdout
    # An attacker with the database file cuts the ledger back to a checkpoint before the revocation.
    conn = raw_database(home)
    conn.executescript(unguard(home))
    conn.execute("DELETE FROM ledger WHERE seq > ?", (rollback_to,))
    conn.execute("DELETE FROM checkpoints WHERE seq > ?", (rollback_to,))
    conn.commit()
    conn.close()
    before = table_snapshot(home)
    line = one_line_error(run_cli("--home", home.path, "ledger", "verify", "--anchor", first, "--anchor", second))
    assert line.startswith(f"kinko: error: seq {anchor_seq}: rolled back")
    # It still extends the first anchor (the cut is after it): what fails then is the state, whose
    # rows made after the cut have no events left, as the replay finds.
    line = one_line_error(run_cli("--home", home.path, "ledger", "verify", "--anchor", first))
    assert "rolled back" not in line and "rewritten" not in line, line
    assert "no ledger event made this row" in line, line
    # A newer export made from the rolled-back database fails against the anchor too.
    clock.advance(minutes=1)
    newer = tmp_path / "newer.csv"
    export(run_cli, home, newer)
    line = one_line_error(verify_offline(run_cli, newer, "--ca-file", root_pem(home), "--anchor", second))
    assert line.startswith(f"kinko: error: seq {anchor_seq}: ")
    assert table_snapshot(home)["certificates"] == before["certificates"]


def test_a_rewritten_past_resealed_by_an_insider_fails_against_an_anchor(
    home: Home, kinko: Kinko, clock, run_cli, tmp_path
) -> None:
    """An insider holding the service account (and so the audit key) rewrites the revocation and
    re-signs every later checkpoint: the checkpoints hold, only an anchor kept outside catches it."""
    some_history(kinko, clock)
    anchor = tmp_path / "anchor.csv"
    export(run_cli, home, anchor)
    anchor_seq = audit.read_head(anchor).seq
    (seq,) = query(home, "SELECT seq FROM ledger WHERE action = 'certificate.revoked'")[0]
    key = audit_key(home)
    rewritten = rechain(home, seq, {"actor": "nobody"})
    conn = raw_database(home)
    for checkpoint, when in list(conn.execute("SELECT seq, time FROM checkpoints WHERE seq >= ?", (seq,))):
        signature = key.sign(
            ledger.checkpoint_message(checkpoint, rewritten[checkpoint], when), ec.ECDSA(hashes.SHA256())
        )
        conn.execute(
            "UPDATE checkpoints SET head_hash = ?, signature = ? WHERE seq = ?",
            (rewritten[checkpoint], signature, checkpoint),
        )
    conn.commit()
    conn.close()
    assert run_cli("--home", home.path, "ledger", "verify").exit_code == 0  # the insider beat the checkpoints
    line = one_line_error(run_cli("--home", home.path, "ledger", "verify", "--anchor", anchor))
    assert line.startswith(f"kinko: error: seq {anchor_seq}: rewritten")


def test_newer_export_extends_an_earlier_one(home: Home, kinko: Kinko, clock, run_cli, tmp_path) -> None:
    some_history(kinko, clock)
    first = tmp_path / "first.csv"
    export(run_cli, home, first)
    clock.advance(minutes=1)
    kinko.issue(make_csr(), name="後藤 三郎")
    newer = tmp_path / "newer.csv"
    export(run_cli, home, newer)
    result = verify_offline(run_cli, newer, "--ca-file", root_pem(home), "--anchor", f"{first}.head.json")
    assert result.exit_code == 0, result.output
    assert f"extends anchor seq {audit.read_head(first).seq}" in result.stdout
    # The anchor must be older: a newer head cannot be extended by an older export.
    line = one_line_error(verify_offline(run_cli, first, "--ca-file", root_pem(home), "--anchor", newer))
    assert "rolled back" in line


def _listen(path: Path) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    return server


def test_each_checkpoint_head_goes_to_syslog(home: Home, clock, tmp_path) -> None:
    log = tmp_path / "log.sock"
    server = _listen(log)
    try:
        set_config(home, "syslog_socket", str(log))
        bank = Kinko(Home(home.path), clock=clock)
        bank.issue(make_csr(), name="山田 太郎")
        message = server.recv(4096).decode("ascii")
    finally:
        server.close()
    seq, head_hash, when, signature, signer = query(home, "SELECT * FROM checkpoints ORDER BY seq DESC LIMIT 1")[0]
    assert message.startswith("<86>kinko[")
    assert f"ledger checkpoint seq={seq} head={head_hash} time={when} signer={signer}" in message
    assert message.endswith(f"signature={signature.hex()}")
    assert signer == Home(home.path).store.authority("audit")[0]  # type: ignore[index]


def test_absent_syslog_socket_is_one_warning_and_the_change_commits(home: Home, clock, run_cli, tmp_path) -> None:
    set_config(home, "syslog_socket", str(tmp_path / "absent.sock"))
    (tmp_path / "a.csr").write_bytes(make_csr())
    before = row_counts(home)
    result = run_cli("--json", "--home", home.path, "issue", "--csr", tmp_path / "a.csr", "--name", "山田 太郎")
    assert result.exit_code == 0, result.output
    # issue seals one transaction; revoke below seals the revocation and its CRLs: still one warning.
    assert result.stderr.count("kinko: warning: syslog socket") == 1
    assert row_counts(home)["certificates"] == before["certificates"] + 1
    serial = json.loads(result.stdout)["serial"]
    revoked = run_cli("--home", home.path, "revoke", serial, "--reason", "superseded")
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stderr.count("\n") == 1 and "is absent" in revoked.stderr


def test_a_stalled_syslog_server_does_not_hold_a_change(home: Home, clock, tmp_path) -> None:
    log = tmp_path / "full.sock"
    server = _listen(log)
    try:
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.setblocking(False)
        with pytest.raises(BlockingIOError):  # the server never reads: fill its queue
            for _ in range(100_000):
                sender.sendto(b"x" * 512, str(log))
        sender.close()
        set_config(home, "syslog_socket", str(log))
        bank = Kinko(Home(home.path), clock=clock)
        started = time.monotonic()
        issued = bank.issue(make_csr(), name="山田 太郎")
        assert time.monotonic() - started < 5
        assert Home(home.path).store.certificate(issued.record.serial) is not None
    finally:
        server.close()


# ---------------------------------------------------------------- 5. the audit signer's lifecycle


def test_ledger_signer_rotate_appoints_and_retires(home: Home, kinko: Kinko, clock, run_cli, tmp_path) -> None:
    some_history(kinko, clock)
    old_serial, old_key = Home(home.path).store.authority("audit")  # type: ignore[misc]
    clock.advance(minutes=1)
    result = run_cli("--json", "--home", home.path, "ledger", "signer", "rotate")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["retired"] == old_serial and answer["key_deleted"] is True
    new_serial, new_key = Home(home.path).store.authority("audit")  # type: ignore[misc]
    assert new_serial == answer["appointed"] != old_serial
    assert not (home.keys_dir / old_key).exists() and (home.keys_dir / new_key).exists()
    assert (home.keys_dir / new_key).stat().st_mode & 0o777 == 0o600
    tail = query(home, "SELECT seq, action, serial, details FROM ledger ORDER BY seq DESC LIMIT 2")[::-1]
    assert [(action, serial) for _seq, action, serial, _d in tail] == [
        ("audit.signer-issued", new_serial),
        ("audit.signer-retired", old_serial),
    ]
    assert json.loads(tail[1][3]) == {"key_file": old_key, "replaced_by": new_serial, "reason": "rotated"}
    issued = json.loads(tail[0][3])
    assert issued["fingerprint_sha256"] == Home(home.path).ca_certificate("audit").fingerprint(hashes.SHA256()).hex()
    # The rotation's own checkpoint is the new signer's, and everything still verifies.
    assert query(home, "SELECT signer FROM checkpoints WHERE seq = ?", (tail[1][0],)) == [(new_serial,)]
    assert run_cli("--home", home.path, "ledger", "verify").exit_code == 0
    out = tmp_path / "ledger.csv"
    export(run_cli, home, out)
    verified = verify_offline(run_cli, out, "--ca-file", root_pem(home))
    assert verified.exit_code == 0, verified.output


def test_a_retired_signer_put_back_by_database_edit_cannot_seal(home: Home, kinko: Kinko, clock, tmp_path) -> None:
    some_history(kinko, clock)
    old_serial, old_key = Home(home.path).store.authority("audit")  # type: ignore[misc]
    shutil.copy(home.keys_dir / old_key, tmp_path / "stolen.key")
    audit.rotate_signer(Home(home.path), "root", clock.now())
    # The attacker restores the old key file and points the audit role back at it.
    shutil.copy(tmp_path / "stolen.key", home.keys_dir / old_key)
    conn = raw_database(home)
    conn.execute("UPDATE authorities SET serial = ?, key_file = ? WHERE role = 'audit'", (old_serial, old_key))
    conn.commit()
    conn.close()
    before = table_snapshot(home)
    bank = Kinko(Home(home.path), clock=clock)
    with pytest.raises(PolicyError, match=f"audit signer {old_serial} was replaced by .* it can no longer sign"):
        bank.issue(make_csr(), name="山田 太郎")
    with pytest.raises(PolicyError, match="it can no longer sign"):
        audit.export(Home(home.path), tmp_path / "x.csv", fmt="csv", actor="root", now=clock.now())
    assert not (tmp_path / "x.csv").exists()
    assert table_snapshot(home) == before


def test_checkpoints_and_exports_signed_by_a_retired_signer_are_rejected(
    home: Home, kinko: Kinko, clock, run_cli, tmp_path
) -> None:
    some_history(kinko, clock)
    old_serial, _ = Home(home.path).store.authority("audit")  # type: ignore[misc]
    old_key, old_certificate = audit_key(home), home.ca_certificate("audit")
    clock.advance(minutes=1)
    audit.rotate_signer(Home(home.path), "root", clock.now())
    clock.advance(minutes=1)
    out = tmp_path / "forged.csv"
    write_export_as(home, out, old_key, old_certificate, clock.now())
    line = one_line_error(verify_offline(run_cli, out, "--ca-file", root_pem(home)))
    assert f"signature does not count: audit signer {old_serial} was replaced by" in line
    seq = forge_sealed_event(home, old_key, old_serial, to_text(clock.now()) or "")
    line = one_line_error(run_cli("--home", home.path, "ledger", "verify"))
    assert line.startswith(f"kinko: error: seq {seq}: checkpoint {seq} is not signed by an audit signer ({old_serial})")
    assert "can no longer sign" in line


def test_a_revoked_audit_signer_can_no_longer_seal_or_sign(home: Home, kinko: Kinko, clock, run_cli, tmp_path) -> None:
    some_history(kinko, clock)
    signer_serial, signer_key_file = Home(home.path).store.authority("audit")  # type: ignore[misc]
    key, certificate = audit_key(home), home.ca_certificate("audit")
    shutil.copy(home.keys_dir / signer_key_file, tmp_path / "stolen.key")
    clock.advance(minutes=1)
    start = Home(home.path).store.ledger_head()[0]
    # The existing revoke path: the revocation appoints a new signer in its own transaction, which
    # the new one seals, so the CRL naming the revoked signer is published at once.
    revoked = run_cli("--json", "--home", home.path, "revoke", signer_serial, "--reason", "key-compromise")
    assert revoked.exit_code == 0, revoked.output
    assert query(home, "SELECT status FROM certificates WHERE serial = ?", (signer_serial,)) == [("revoked",)]
    new_serial, _ = Home(home.path).store.authority("audit")  # type: ignore[misc]
    assert new_serial != signer_serial
    actions = query(home, "SELECT action, serial, details FROM ledger WHERE seq > ? ORDER BY seq", (start,))
    sequence = [(a, s) for a, s, _d in actions if a.startswith(("certificate.", "audit."))]
    assert sequence == [
        ("certificate.revoked", signer_serial),
        ("audit.signer-issued", new_serial),
        ("audit.signer-retired", signer_serial),
    ]
    assert "crl.published" in [a for a, _s, _d in actions]
    assert not (home.keys_dir / signer_key_file).exists()
    assert run_cli("--home", home.path, "ledger", "verify").exit_code == 0
    # The attacker puts the revoked signer back (its stolen key, the authorities row).
    shutil.copy(tmp_path / "stolen.key", home.keys_dir / signer_key_file)
    conn = raw_database(home)
    conn.execute(
        "UPDATE authorities SET serial = ?, key_file = ? WHERE role = 'audit'", (signer_serial, signer_key_file)
    )
    conn.commit()
    conn.close()
    before = table_snapshot(home)
    clock.advance(minutes=1)
    (tmp_path / "a.csr").write_bytes(make_csr())
    line = one_line_error(run_cli("--home", home.path, "issue", "--csr", tmp_path / "a.csr", "--name", "A"))
    assert f"audit signer {signer_serial} was revoked at seq" in line
    line = one_line_error(
        run_cli("--home", home.path, "ledger", "export", "--format", "csv", "--out", tmp_path / "x.csv")
    )
    assert "was revoked" in line and not (tmp_path / "x.csv").exists()
    assert table_snapshot(home) == before
    # Forged with the revoked key: an export, and a checkpoint over an appended event.
    out = tmp_path / "forged.csv"
    write_export_as(home, out, key, certificate, clock.now())
    assert "was revoked" in one_line_error(verify_offline(run_cli, out, "--ca-file", root_pem(home)))
    seq = forge_sealed_event(home, key, signer_serial, to_text(clock.now()) or "")
    line = one_line_error(run_cli("--home", home.path, "ledger", "verify"))
    assert line.startswith(f"kinko: error: seq {seq}: checkpoint {seq} is not signed by an audit signer")
    assert "was revoked" in line


def test_the_audit_signer_cannot_be_held(home: Home, run_cli) -> None:
    """A held audit signer could seal nothing, not even its own release: hold is refused."""
    signer_serial, _ = Home(home.path).store.authority("audit")  # type: ignore[misc]
    before = table_snapshot(home)
    line = one_line_error(run_cli("--home", home.path, "hold", signer_serial))
    assert "is the ledger's audit signer: it cannot be held" in line
    after = table_snapshot(home)
    assert {t: rows for t, rows in after.items() if t not in ("ledger", "checkpoints")} == {
        t: rows for t, rows in before.items() if t not in ("ledger", "checkpoints")
    }
    assert all(row[3] != "certificate.held" for row in after["ledger"])


def test_signer_rotate_needs_admin(home: Home, run_cli) -> None:
    """Role checks are the role matrix's (test_roles.py); here only that the command is an admin's."""
    from kinko.ca.commands.registry import required_roles

    assert required_roles()["ledger signer rotate"] == "admin"


# ---------------------------------------------------------------- 5. OCSP signers


def test_ocsp_signer_rotate_deletes_the_old_key_and_records_it(home: Home, kinko: Kinko, clock, run_cli) -> None:
    store = Home(home.path).store
    old = {role: store.authority(f"ocsp:{role}") for role in ("issuing", "root")}
    assert all((home.keys_dir / found[1]).exists() for found in old.values() if found)
    clock.advance(minutes=1)
    result = run_cli("--home", home.path, "ocsp", "signer", "rotate")
    assert result.exit_code == 0, result.output
    retired = query(home, "SELECT serial, details FROM ledger WHERE action = 'ocsp.signer-retired' ORDER BY seq")
    assert len(retired) == 2
    for role, found in old.items():
        assert found is not None
        assert not (home.keys_dir / found[1]).exists(), f"the retired {role} signer's key is still in keys/"
        details = next(json.loads(d) for serial, d in retired if serial == found[0])
        assert details["issuer"] == role and details["key_file"] == found[1]
        assert details["replaced_by"] == Home(home.path).store.authority(f"ocsp:{role}")[0]  # type: ignore[index]
    assert sorted(p.name for p in home.keys_dir.iterdir() if p.name.startswith("ocsp-")) == sorted(
        Home(home.path).store.authority(f"ocsp:{role}")[1]  # type: ignore[index]
        for role in ("issuing", "root")
    )
    assert run_cli("--home", home.path, "ledger", "verify").exit_code == 0


def test_ocsp_signers_live_30_days_by_default(home: Home) -> None:
    assert config.OCSPSettings().signer_validity_days == 30
    assert home.config.ocsp.signer_validity_days == 30
    for role in ("issuing", "root"):
        signer = home.ca_certificate(f"ocsp:{role}")
        lifetime = signer.not_valid_after_utc - signer.not_valid_before_utc
        assert dt.timedelta(days=29) < lifetime <= dt.timedelta(days=30)


@pytest.mark.parametrize("job", [("ocsp", "refresh"), ("crl", "publish")])
def test_daily_jobs_renew_ocsp_signers_at_two_thirds_of_their_life(
    home: Home, kinko: Kinko, clock, run_cli, job: tuple[str, str]
) -> None:
    first = home.ca_certificate("ocsp:issuing")
    clock.advance(days=19, hours=23)
    assert run_cli("--home", home.path, *job).exit_code == 0
    assert Home(home.path).ca_certificate("ocsp:issuing").serial_number == first.serial_number
    clock.advance(hours=1)  # day 20: two-thirds of 30 days
    result = run_cli("--home", home.path, *job)
    assert result.exit_code == 0, result.output
    renewed = Home(home.path)
    assert renewed.ca_certificate("ocsp:issuing").serial_number != first.serial_number
    assert renewed.ca_certificate("ocsp:issuing").not_valid_before_utc == clock.now()
    assert len(query(home, "SELECT 1 FROM ledger WHERE action = 'ocsp.signer-retired'")) == 2
    assert sum(1 for p in home.keys_dir.iterdir() if p.name.startswith("ocsp-")) == 2


def test_kinko_never_signs_with_an_ocsp_signer_outside_its_validity(
    home: Home, kinko: Kinko, clock, run_cli, tmp_path
) -> None:
    serial = kinko.issue(make_csr(), name="山田 太郎").record.serial
    signer = home.ca_certificate("ocsp:issuing")
    clock.set(signer.not_valid_after_utc + dt.timedelta(seconds=1))
    before = table_snapshot(home)
    # The pre-signer itself refuses an expired signer (the daily jobs would have renewed it).
    refusal = pytest.raises(PolicyError, match=r"the OCSP signer of issuing is valid from .* not at")
    with refusal, home.store.transaction("tester", to_text(clock.now()) or "") as tx:
        kinko.session.presigner.sign(tx, [tx.certificate(serial)], clock.now())
    assert table_snapshot(home) == before
    # A change renews the expired signer first (a new one, valid from now), then signs with it.
    revoked = run_cli("--home", home.path, "revoke", serial, "--reason", "superseded")
    assert revoked.exit_code == 0, revoked.output
    current = Home(home.path).ca_certificate("ocsp:issuing")
    assert current.serial_number != signer.serial_number and current.not_valid_before_utc == clock.now()


def _swap_audit_certificate(home_path: Path, clock: FixedClock) -> str:
    """An attacker with the database file replaces the audit signer's registry row with a certificate
    of their own key (same serial, same names) and re-signs every checkpoint with that key."""
    conn = raw_database(Home(home_path))
    serial, der = conn.execute(
        "SELECT c.serial, c.der FROM certificates c JOIN authorities a ON a.serial = c.serial WHERE a.role = 'audit'"
    ).fetchone()
    genuine = x509.load_der_x509_certificate(der)
    key = make_key()
    fake = (
        x509.CertificateBuilder()
        .subject_name(genuine.subject)
        .issuer_name(genuine.issuer)
        .public_key(key.public_key())
        .serial_number(genuine.serial_number)
        .not_valid_before(genuine.not_valid_before_utc)
        .not_valid_after(genuine.not_valid_after_utc)
        .sign(key, hashes.SHA256())
    )
    fake_der = fake.public_bytes(serialization.Encoding.DER)
    conn.execute("UPDATE certificates SET der = ? WHERE serial = ?", (fake_der, serial))
    for seq, head_hash, when in list(conn.execute("SELECT seq, head_hash, time FROM checkpoints")):
        signature = key.sign(ledger.checkpoint_message(seq, head_hash, when), ec.ECDSA(hashes.SHA256()))
        conn.execute("UPDATE checkpoints SET signature = ? WHERE seq = ?", (signature, seq))
    conn.commit()
    conn.close()
    return str(serial)


def test_audit_certificate_swapped_in_the_registry_does_not_count(home: Home, kinko: Kinko, clock, run_cli) -> None:
    some_history(kinko, clock)
    serial = _swap_audit_certificate(home.path, clock)
    line = one_line_error(run_cli("--home", home.path, "ledger", "verify"))
    assert f"is not signed by an audit signer ({serial})" in line
    assert "not the one the ledger appointed" in line


def test_swapped_audit_certificate_of_a_ledger_without_fingerprints_does_not_count(tmp_path: Path, monkeypatch) -> None:
    """A home made before the ledger recorded the audit signer's fingerprint (the version-1 fixture):
    the registry's certificate must still be issued by a CA whose fingerprint the ledger records."""
    import tarfile

    from click.testing import CliRunner

    from kinko import cli
    from tests.integration.test_migrations import ADMIN, FIXTURE

    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    monkeypatch.setenv("KINKO_PASSPHRASE_FILE", str(tmp_path / "pass.txt"))
    home_path = tmp_path / "home"
    clock = FixedClock(dt.datetime(2026, 12, 1, 0, 10, tzinfo=dt.UTC))

    def kinko(*args: Any) -> Any:
        return CliRunner().invoke(
            cli.cli, ["--home", str(home_path), *map(str, args)], obj={"clock": clock, "actor": ADMIN}
        )

    assert kinko("db", "upgrade").exit_code == 0
    assert kinko("ledger", "verify").exit_code == 0, kinko("ledger", "verify").output
    appointed = query(Home(home_path), "SELECT details FROM ledger WHERE action = 'audit.signer-issued'")
    assert all("fingerprint_sha256" not in details for (details,) in appointed)
    serial = _swap_audit_certificate(home_path, clock)
    result = kinko("ledger", "verify")
    assert result.exit_code == 1
    assert f"is not signed by an audit signer ({serial}): its certificate is not issued by a CA" in result.stderr


def test_the_responder_never_signs_with_an_expired_signer(home: Home, kinko: Kinko, clock) -> None:
    from cryptography.x509 import ocsp

    from kinko.ocsp.source import DatabaseSource
    from tests.integration.test_ocsp_state import request_for

    issued = kinko.issue(make_csr(), name="山田 太郎")
    source = DatabaseSource(home.path, clock=clock)
    request = request_for(home, issued.pem, nonce=b"0123456789abcdef")  # a nonce: always signed on demand
    fresh = ocsp.load_der_ocsp_response(source.response(request).body)
    assert fresh.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    clock.set(home.ca_certificate("ocsp:issuing").not_valid_after_utc + dt.timedelta(seconds=1))
    late = ocsp.load_der_ocsp_response(source.response(request).body)
    assert late.response_status == ocsp.OCSPResponseStatus.TRY_LATER


def test_export_companions_never_follow_a_planted_symlink(home: Home, kinko: Kinko, clock, run_cli, tmp_path) -> None:
    some_history(kinko, clock)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    out = tmp_path / "ledger.csv"
    Path(f"{out}.head.json").symlink_to(victim)
    Path(f"{out}.sig").symlink_to(victim)
    export(run_cli, home, out)
    assert victim.read_text(encoding="utf-8") == "keep me"
    for companion in (".sig", ".chain.pem", ".head.json"):
        written = Path(f"{out}{companion}")
        assert not written.is_symlink() and written.stat().st_mode & 0o777 == 0o644
    # The export itself too: written beside its destination and renamed over it, so a symlink
    # planted there is replaced, never followed.
    linked = tmp_path / "linked.csv"
    linked.symlink_to(victim)
    export(run_cli, home, linked)
    assert not linked.is_symlink() and linked.stat().st_mode & 0o777 == 0o600
    assert linked.read_text(encoding="utf-8").startswith("seq,")
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_bad_verify_arguments_are_one_line_each(home: Home, kinko: Kinko, clock, run_cli, tmp_path) -> None:
    some_history(kinko, clock)
    out = tmp_path / "ledger.csv"
    export(run_cli, home, out)
    assert "does not exist" in one_line_error(
        run_cli("--home", home.path, "ledger", "verify", "--anchor", tmp_path / "missing.csv")
    )
    (tmp_path / "junk.csv.head.json").write_text("{not json", encoding="utf-8")
    assert "cannot read head file" in one_line_error(
        run_cli("--home", home.path, "ledger", "verify", "--anchor", tmp_path / "junk.csv")
    )
    assert "go with --export" in one_line_error(
        run_cli("--home", home.path, "ledger", "verify", "--ca-file", root_pem(home))
    )
    both = verify_offline(run_cli, out, "--ca-file", root_pem(home), "--root-fingerprint", "AB" * 32)
    assert "not both" in one_line_error(both)
    assert "does not exist" in one_line_error(verify_offline(run_cli, out, "--ca-file", tmp_path / "none.pem"))
    Path(f"{out}.sig").unlink()
    anchored = verify_offline(run_cli, out, "--ca-file", root_pem(home), "--allow-unsigned", "--anchor", out)
    assert "needs a signed export" in one_line_error(anchored)


def test_an_audit_signer_past_its_validity_seals_nothing(home: Home, clock, run_cli, tmp_path) -> None:
    signer = home.ca_certificate("audit")
    clock.set(signer.not_valid_after_utc + dt.timedelta(seconds=1))
    before = table_snapshot(home)
    line = one_line_error(run_cli("--home", home.path, "ledger", "checkpoint"))
    assert "outside its validity" in line and "kinko ledger signer rotate" in line
    out = tmp_path / "late.csv"
    assert "outside its validity" in one_line_error(
        run_cli("--home", home.path, "ledger", "export", "--format", "csv", "--out", out)
    )
    assert not out.exists()
    assert table_snapshot(home) == before
