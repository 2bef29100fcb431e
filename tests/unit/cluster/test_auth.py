"""Signatures on internal requests: exact method, target and body; a clock window; no replay across workers."""

from __future__ import annotations

import pytest

from countdb.cluster.auth import Verifier, sign
from countdb.errors import Unauthenticated

SECRET = "s3cret"


@pytest.fixture
def verifier(tmp_path):
    made = Verifier(SECRET, tmp_path / "nonces.sqlite")
    yield made
    made.close()


def test_a_signed_request_is_accepted_once_and_names_its_node(verifier, tmp_path):
    headers = sign(SECRET, "POST", "/cluster/write?x=1", b"body", node=2)
    assert verifier.verify("POST", "/cluster/write?x=1", headers, b"body") == 2
    other_worker = Verifier(SECRET, tmp_path / "nonces.sqlite")
    with pytest.raises(Unauthenticated, match="replayed"):
        other_worker.verify("POST", "/cluster/write?x=1", headers, b"body")
    other_worker.close()


def test_a_request_whose_replay_changes_nothing_can_skip_the_nonce_register(verifier):
    headers = sign(SECRET, "POST", "/cluster/write", b"points", node=1)
    assert verifier.verify("POST", "/cluster/write", headers, b"points", once=False) == 1
    assert verifier.verify("POST", "/cluster/write", headers, b"points", once=False) == 1
    assert verifier.verify("POST", "/cluster/write", headers, b"points") == 1
    with pytest.raises(Unauthenticated, match="replayed"):
        verifier.verify("POST", "/cluster/write", headers, b"points")


@pytest.mark.parametrize("method, target, body", [
    ("GET", "/cluster/write?x=1", b"body"), ("POST", "/cluster/write?x=2", b"body"),
    ("POST", "/cluster/write?x=1", b"bodY")])
def test_any_change_to_what_was_signed_is_refused(verifier, method, target, body):
    headers = sign(SECRET, "POST", "/cluster/write?x=1", b"body", node=0)
    with pytest.raises(Unauthenticated, match="bad signature"):
        verifier.verify(method, target, headers, body)


def test_another_secret_a_stale_time_and_missing_headers_are_refused(verifier):
    with pytest.raises(Unauthenticated, match="bad signature"):
        verifier.verify("GET", "/cluster/status", sign("other", "GET", "/cluster/status", b"", 0), b"")
    stale = sign(SECRET, "GET", "/cluster/status", b"", 0, now=1_000_000)
    with pytest.raises(Unauthenticated, match="clock"):
        verifier.verify("GET", "/cluster/status", stale, b"")
    with pytest.raises(Unauthenticated, match="missing"):
        verifier.verify("GET", "/cluster/status", {}, b"")


def test_the_master_makes_the_nonce_register_in_wal_mode_before_workers_open_it(tmp_path):
    """Two workers turning a new register to WAL at once failed one with 'database is locked' and stopped the node."""
    import sqlite3

    from countdb.api.services import prepare_node
    from countdb.config import Settings
    from countdb.datadir import DataDir

    settings = Settings.for_tests(tmp_path / "data", cluster_enabled=True, cluster_nodes=("a:1", "b:1"), node_id="1",
                                  cluster_secret="s")
    prepare_node(settings)
    register = DataDir(settings.data_dir).nonce_register
    with sqlite3.connect(register) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT count(*) FROM nonces").fetchone() == (0,)
