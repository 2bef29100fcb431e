"""step= durations, fill= policies and filling the empty buckets of one series."""

from __future__ import annotations

import pyarrow as pa
import pytest

from countdb.errors import InvalidInput
from countdb.query.buckets import Fill, bucket_count, bucket_of, fill_buckets, parse_fill, parse_step


@pytest.mark.parametrize("text, step_ms", [("10s", 10_000), ("1m", 60_000), ("1h", 3_600_000), ("1d", 86_400_000),
                                           ("250ms", 250), ("1h30m", 5_400_000), ("2w", 1_209_600_000)])
def test_steps_are_durations_with_units(text, step_ms):
    assert parse_step(text) == step_ms


@pytest.mark.parametrize("text", ["60", "1x", "m", "", "1.5m", "-1m", "0s", "1m 30s", "10000w"])
def test_bad_steps_are_refused_naming_step(text):
    with pytest.raises(InvalidInput) as caught:
        parse_step(text)
    assert caught.value.field == "step"


@pytest.mark.parametrize("text, fill", [(None, Fill("none")), ("none", Fill("none")), ("NULL", Fill("null")),
                                        ("previous", Fill("previous")), ("linear", Fill("linear")),
                                        ("0", Fill("number", 0.0)), ("-2.5", Fill("number", -2.5))])
def test_fill_policies(text, fill):
    assert parse_fill(text) == fill


@pytest.mark.parametrize("text", ["nan", "inf", "zero", ""])
def test_bad_fills_are_refused(text):
    with pytest.raises(InvalidInput, match="fill"):
        parse_fill(text)


def test_buckets_are_aligned_to_the_epoch_whatever_the_start():
    assert bucket_of(125_000, 60_000) == 120_000
    assert bucket_of(120_000, 60_000) == 120_000
    assert bucket_count(125_000, 125_000, 60_000) == 1
    assert bucket_count(59_999, 60_000, 60_000) == 2


TS = pa.array([10, 30, 60], pa.int64())
VALUES = pa.array([1.0, 3.0, 9.0])


@pytest.mark.parametrize("fill, expected", [
    (Fill("null"), [None, 1.0, None, 3.0, None, None, 9.0, None]),
    (Fill("number", 0.0), [0.0, 1.0, 0.0, 3.0, 0.0, 0.0, 9.0, 0.0]),
    (Fill("previous"), [None, 1.0, 1.0, 3.0, 3.0, 3.0, 9.0, 9.0]),
    (Fill("linear"), [None, 1.0, 2.0, 3.0, 5.0, 7.0, 9.0, None]),
])
def test_fill_answers_every_bucket_of_the_range(fill, expected):
    grid, values = fill_buckets(TS, VALUES, 5, 75, 10, fill)
    assert grid.to_pylist() == [0, 10, 20, 30, 40, 50, 60, 70]
    assert values.to_pylist() == expected


def test_a_bucket_whose_aggregate_is_null_stays_null_under_every_fill():
    values = pa.array([1.0, None, 9.0])
    for fill in (Fill("null"), Fill("number", 0.0), Fill("previous"), Fill("linear")):
        assert fill_buckets(TS, values, 10, 60, 10, fill)[1].to_pylist()[2] is None


def test_filling_a_series_without_buckets():
    grid, values = fill_buckets(pa.array([], pa.int64()), pa.array([], pa.float64()), 0, 20, 10, Fill("number", 4.0))
    assert grid.to_pylist() == [0, 10, 20] and values.to_pylist() == [4.0, 4.0, 4.0]
