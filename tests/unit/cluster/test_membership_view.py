"""A worker's view of the members: read from the agent's file at most every RELOAD_SECONDS, except that a peer
looking down is checked against the file as it is now. A stale view skipped a node that had just come back: a
write then fell short of its quorum when another owner stopped (a rolling restart), and right after a cluster
formed, writes were refused as from a minority."""

from __future__ import annotations

import time

import pytest

from countdb.cluster.members import Member, MinorityError, Membership, write_members

NODES = ("a:1", "b:1", "c:1")


def _members(up: bool) -> list[Member]:
    return [Member(n, address, time.time() if up or n == 0 else 0.0, 1) for n, address in enumerate(NODES)]


def _rewrite(folder, up: bool) -> None:
    time.sleep(0.01)  # a later modification time
    write_members(folder, _members(up))


def test_a_peer_that_came_back_counts_at_once(tmp_path):
    membership = Membership(tmp_path, NODES, 0, failure_timeout_seconds=3, heartbeat_interval_seconds=1)
    write_members(tmp_path, _members(up=False))
    assert membership.up_nodes() == [0]  # loaded: its peers are down
    with pytest.raises(MinorityError):
        membership.require_majority()
    _rewrite(tmp_path, up=True)
    assert membership.up_nodes() == [0, 1, 2]  # within RELOAD_SECONDS of the last read, yet read again
    membership.require_majority()


def test_a_peer_that_looks_up_is_not_read_again_within_the_reload_interval(tmp_path):
    membership = Membership(tmp_path, NODES, 0, failure_timeout_seconds=3, heartbeat_interval_seconds=1)
    write_members(tmp_path, _members(up=True))
    assert membership.up_nodes() == [0, 1, 2]
    _rewrite(tmp_path, up=False)
    assert membership.up_nodes() == [0, 1, 2]  # a request to a peer that is gone fails and suspects it
    membership.suspect(1)
    assert membership.up_nodes() == [0, 2]
