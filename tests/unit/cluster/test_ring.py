"""The ring: placement is deterministic, balanced and stable when a node joins or leaves (property tests)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from countdb.cluster.ring import Ring, partition_of

KEYS = [f'cpu.usage{{host="h{i}",core="{i % 8}"}}' for i in range(20_000)]


def nodes(count: int) -> list[str]:
    return [f"count-{i}.count-headless.count.svc.cluster.local:8080" for i in range(count)]


@pytest.mark.parametrize("count", [3, 4, 5, 6, 7])
def test_each_node_holds_its_fair_share_of_copies_within_ten_percent(count):
    ring = Ring.build(nodes(count))
    copies = Counter(node for key in KEYS for node in ring.owners(key, 2))
    fair = 2 * len(KEYS) / count
    assert all(abs(copies[node] - fair) <= 0.10 * fair for node in range(count)), copies


@pytest.mark.parametrize("count", [3, 4, 5, 6])
def test_a_joining_node_moves_about_one_nth_of_the_series(count):
    before, after = Ring.build(nodes(count)), Ring.build(nodes(count + 1))
    moved = sum(before.owners(key, 1) != after.owners(key, 1) for key in KEYS)
    assert moved <= 1.25 * len(KEYS) / (count + 1)
    for key in KEYS[:2000]:  # keys move only to the new node
        if before.owners(key, 1) != after.owners(key, 1):
            assert after.owners(key, 1) == (count,)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=200), st.integers(1, 7), st.integers(1, 7))
def test_owners_are_distinct_nodes_and_the_same_on_every_node(key, count, factor):
    factor = min(factor, count)
    owners = Ring.build(nodes(count)).owners(key, factor)
    assert len(set(owners)) == factor
    assert Ring.build(nodes(count)).owners(key, factor) == owners
    assert Ring.build(nodes(count)).preference(key)[:factor] == owners


@given(st.text(min_size=1, max_size=100))
def test_partitions_cover_the_hash_space(key):
    assert 0 <= partition_of(key) < 256


def test_shares_add_up_to_one_and_are_balanced():
    shares = Ring.build(nodes(5)).shares(2)
    assert sum(shares) == pytest.approx(1.0)
    assert all(abs(share - 0.2) <= 0.02 for share in shares)


@pytest.mark.parametrize("count, factor", [(3, 2), (5, 2), (5, 3)])
def test_owner_sets_are_exactly_the_owners_keys_get(count, factor):
    ring = Ring.build(nodes(count))
    assert {frozenset(ring.owners(key, factor)) for key in KEYS} == ring.owner_sets(factor)
