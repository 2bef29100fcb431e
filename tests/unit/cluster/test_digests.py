"""The replication module's pure decisions: which digest cells differ, which rows each side lacks, and that a
pushed segment is checked and can be applied twice."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from countdb.cluster.digests import differing_cells, missing_tombstones, rows_missing, stamped_before
from countdb.cluster.wire import decode_segment, encode_segment, encode_stream, decode_stream, seq_groups
from countdb.errors import InvalidInput

# NOTE: no deadline: whichever example runs first in a fresh process pays for pyarrow's first compute calls
# (~0.4 s measured), which failed the first test of this file when it ran alone.
UNTIMED = settings(deadline=None)
points = st.lists(st.tuples(st.sampled_from(["a", "b", 'c{x="1"}']), st.integers(0, 50), st.integers(1, 5)),
                  unique_by=lambda p: (p[0], p[1]), max_size=60)


def table(rows) -> pa.Table:
    return pa.table({"series": [r[0] for r in rows], "ts": pa.array([r[1] for r in rows], pa.int64()),
                     "value": pa.array([float(r[2]) for r in rows]), "seq": pa.array([r[2] for r in rows], pa.int64())})


def keys(t: pa.Table) -> set:
    return set(zip(t["series"].to_pylist(), t["ts"].to_pylist(), t["seq"].to_pylist()))


@given(points, points)
@UNTIMED
def test_pushing_what_each_side_lacks_makes_both_hold_the_same(mine, theirs):
    here, there = table(mine), table(theirs)
    to_them, to_me = rows_missing(here, there), rows_missing(there, here)
    assert keys(here) | keys(to_me) == keys(there) | keys(to_them) == keys(here) | keys(there)
    assert not keys(to_them) & keys(there) and not keys(to_me) & keys(here)


@given(points, points, st.integers(1, 6))
@UNTIMED
def test_with_a_horizon_only_rows_stamped_before_it_are_compared_and_pushed(mine, theirs, before):
    here, there = stamped_before(table(mine), before), stamped_before(table(theirs), before)
    assert all(seq < before for _, _, seq in keys(here) | keys(there))
    assert keys(rows_missing(here, there)) == {row for row in keys(table(mine)) - keys(table(theirs)) if row[2] < before}
    assert stamped_before(table(mine), None) == table(mine)


@given(points)
@UNTIMED
def test_the_same_rows_lack_nothing(rows):
    assert rows_missing(table(rows), table(list(reversed(rows)))).num_rows == 0


def test_cells_that_differ_or_exist_on_one_side_only_are_listed():
    mine = [["2024-01", 3, 10, 111], ["2024-01", 4, 5, 222], ["2024-02", 3, 1, 5]]
    theirs = [["2024-01", 3, 10, 111], ["2024-01", 4, 5, 223], ["2024-03", 0, 1, 9]]
    assert differing_cells(mine, theirs) == [("2024-01", 4), ("2024-02", 3), ("2024-03", 0)]
    assert differing_cells(mine, list(reversed(mine))) == []


def test_tombstones_one_side_lacks_are_found():
    assert missing_tombstones([["s", 0, 5, 9], ["t", 1, 2, 3]], [["t", 1, 2, 3]]) == [["s", 0, 5, 9]]


@given(points)
@UNTIMED
def test_a_segment_round_trips_and_is_checked_against_its_address(rows):
    data, address = encode_segment(table(rows))
    assert keys(decode_segment(data, address)) == keys(table(rows))
    assert encode_segment(table(list(reversed(rows))))[1] == address  # content-addressed: same points, same name
    with pytest.raises(InvalidInput, match="content address"):
        decode_segment(data[:-1] + bytes([data[-1] ^ 1]), address)


@given(points)
@UNTIMED
def test_stamped_streams_round_trip_and_split_by_stamp(rows):
    decoded = decode_stream(encode_stream(table(rows)))
    assert keys(decoded) == keys(table(rows))
    groups = seq_groups(decoded)
    assert [seq for seq, _ in groups] == sorted({r[2] for r in rows})
    assert sum(batch.num_rows for _, batch in groups) == len(rows)
    for seq, batch in groups:  # each stamp's rows, in the order they came
        assert list(zip(*(batch.column(name).to_pylist() for name in ("series", "ts", "value")))) == [
            (series, ts, float(stamp)) for series, ts, stamp in rows if stamp == seq]
