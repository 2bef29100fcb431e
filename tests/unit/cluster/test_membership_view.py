"""A worker's view of the members: read from the agent's file at most every RELOAD_SECONDS, except that a write
it would refuse as a minority reads the file first (right after a cluster forms, a stale view refused writes)."""

from __future__ import annotations

import time

import pytest

from countdb.cluster.members import Member, MinorityError, Membership, write_members

NODES = ("a:1", "b:1", "c:1")


def _members(up: bool) -> list[Member]:
    return [Member(n, address, time.time() if up or n == 0 else 0.0, 1) for n, address in enumerate(NODES)]


def test_a_refusal_reads_the_agents_latest_view_first(tmp_path):
    membership = Membership(tmp_path, NODES, 0, failure_timeout_seconds=3, heartbeat_interval_seconds=1)
    write_members(tmp_path, _members(up=False))
    assert membership.up_nodes() == [0]  # loaded: its peers are down
    with pytest.raises(MinorityError):
        membership.require_majority()
    time.sleep(0.01)  # a later modification time
    write_members(tmp_path, _members(up=True))
    assert membership.up_nodes() == [0]  # within RELOAD_SECONDS the view is not read again
    membership.require_majority()  # ... but a refusal reads it: the peers are up, the write goes on
    assert membership.up_nodes() == [0, 1, 2]
