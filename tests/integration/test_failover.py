"""Failover: the CA's PostgreSQL primary is lost and its streaming standby promoted (pg_ctl
promote). Pointed at the promoted server, the CA goes on issuing, revoking and publishing; no
serial and no CRL number is used twice, not even when the standby had not received the
primary's last commits (asynchronous replication), and the ledger verifies across the switch."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from kinko.ca import config
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from tests.conftest import ORG, make_csr, run_kinko
from tests.postgres import Cluster


@pytest.fixture
def cluster() -> Any:
    """A primary of its own and a streaming standby: this test loses the primary."""
    made = Cluster()
    try:
        yield made
    finally:
        made.close()


def published_numbers(home: Home) -> list[int]:
    numbers = []
    for path in sorted((home.public_dir / "crl").glob("issuing*.crl")):
        crl = x509.load_der_x509_crl(path.read_bytes())
        numbers.append(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    return numbers


def point_at(home: Home, url: str) -> Home:
    text = home.config_file.read_text(encoding="utf-8")
    home.config_file.write_text(config.set_value(text, "url", url), encoding="utf-8")
    return Home(home.path)


@pytest.mark.parametrize("lost_tail", [False, True], ids=["caught up", "last commits lost"])
def test_after_promote_the_ca_carries_on_and_reuses_no_number(
    cluster: Any, tmp_path: Path, clock: Any, passphrase_file: Path, lost_tail: bool
) -> None:
    url = cluster.new_database()
    home = create_home(
        tmp_path / "ca",
        InitOptions(
            organization=ORG, passphrase_file=passphrase_file, database=url, database_password_file=cluster.passfile
        ),
        clock,
        "root",
    )
    kinko = Kinko(home, clock=clock)
    serials = [kinko.issue(make_csr(), name=f"利用者 {i}").record.serial for i in range(3)]
    kinko.revoke(serials[0], "key-compromise")
    standby = cluster.standby("standby")
    cluster.wait_replayed(standby)
    if lost_tail:
        # The standby stops hearing the primary; the primary commits more (a certificate, a
        # revocation, their CRLs: files the world has fetched) and is then lost.
        standby.stop()
        serials.append(kinko.issue(make_csr(), name="失われる 利用者").record.serial)
        kinko.revoke(serials[1], "superseded")
        home.store.close()
        cluster.primary.stop("immediate")
        standby.start()
    else:
        home.store.close()
        cluster.primary.stop("immediate")
    seen_before = published_numbers(home)
    standby.promote()

    moved = point_at(home, standby.url(url.rsplit("/", 1)[1]))
    kept = {number for number, _state in moved.store.crl_numbers("issuing")}
    after = Kinko(moved, clock=clock)
    clock.advance(seconds=1)
    new = [after.issue(make_csr(), name=f"新 利用者 {i}").record.serial for i in range(3)]
    revoked = after.revoke(new[0], "key-compromise")
    assert revoked.crls, "the revocation published its CRLs"
    published = run_kinko("--home", moved.path, "crl", "publish")
    assert published.returncode == 0, published.stderr

    # No serial twice: every one ever issued, on both sides of the switch, is distinct.
    registry = [record.serial for record in moved.store.certificates()]
    assert len(registry) == len(set(registry))
    assert len(set(serials) | set(new)) == len(serials) + len(new)
    # No CRL number twice: each one used after the switch is above all published before it,
    # those the promoted database never heard of included.
    numbers = [number for number, _state in moved.store.crl_numbers("issuing")]
    assert len(numbers) == len(set(numbers))
    used_after = set(numbers) - kept
    assert len(used_after) >= 4 and min(used_after) > max(seen_before), (sorted(kept), seen_before, sorted(used_after))
    assert min(published_numbers(moved)) > max(seen_before)
    # The ledger verifies across the switch (the lost tail is simply not in it).
    verified = run_kinko("--home", moved.path, "ledger", "verify")
    assert verified.returncode == 0 and "ledger OK" in verified.stdout, verified.stderr
    if lost_tail:
        assert serials[-1] not in registry
    shutil.rmtree(tmp_path / "ca", ignore_errors=True)
