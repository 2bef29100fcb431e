"""Aggregation names and their SQL, run by real DuckDB; rate() checked against Prometheus' arithmetic."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from countdb.errors import InvalidInput
from countdb.query.aggregations import grouped_sql, parse_aggregation
from countdb.query.visible import used_params

SCHEMA = pa.schema([("series", pa.string()), ("ts", pa.int64()), ("value", pa.float64())])


def run(aggregation: str, rows: list[tuple[str, int, float]], keys=(), window=("$start", "$end"), quantile=None):
    """The aggregate over `rows` (series, ts, value) in the window [0, 60 s]."""
    connection = duckdb.connect()
    connection.register("points", pa.Table.from_pylist(
        [{"series": s, "ts": t, "value": float(v)} for s, t, v in rows], SCHEMA))
    sql = grouped_sql(parse_aggregation(aggregation, quantile), "points", list(keys), window)
    sql += " ORDER BY 1" if keys else ""
    return connection.sql(sql, params=used_params(sql, {"start": 0, "end": 60_000})).fetchall()


DATA = [("s", 0, 4.0), ("s", 1000, 1.0), ("s", 2000, 3.0), ("s", 3000, 2.0)]


@pytest.mark.parametrize("name, expected", [
    ("sum", 10.0), ("mean", 2.5), ("avg", 2.5), ("min", 1.0), ("max", 4.0), ("count", 4), ("first", 4.0),
    ("last", 2.0), ("median", 2.5), ("p50", 2.5), ("p90", 3.7), ("p99", 3.97), ("p75", 3.25),
    ("stddev", pytest.approx(1.2909944)),
])
def test_simple_aggregations(name, expected):
    assert run(name, DATA)[0][0] == pytest.approx(expected)


def test_quantile_parameter():
    assert run("quantile", DATA, quantile="0.25")[0][0] == pytest.approx(1.75)
    assert parse_aggregation(None, "0.5").name == "quantile"


@pytest.mark.parametrize("name, expected", [("count", 0), ("sum", None), ("rate", None), ("p99", None)])
def test_nothing_aggregates_to_null_and_count_to_zero(name, expected):
    assert run(name, [])[0][0] == expected


@pytest.mark.parametrize("name, quantile, field", [
    ("median-ish", None, "aggregation"), ("p100", None, "aggregation"), ("p0", None, "aggregation"),
    ("quantile", None, "quantile"), ("quantile", "1.5", "quantile"), ("quantile", "x", "quantile"),
    ("sum", "0.5", "quantile"), (None, None, "aggregation"),
])
def test_bad_aggregations_name_the_field(name, quantile, field):
    with pytest.raises(InvalidInput) as caught:
        parse_aggregation(name, quantile)
    assert caught.value.field == field and caught.value.message.startswith(field)


def test_unknown_aggregation_error_names_it():
    with pytest.raises(InvalidInput, match="'median-ish'"):
        parse_aggregation("median-ish")


def test_rate_adds_back_counter_resets():
    # 0 → 30 is +30; the drop to 5 is a reset (+5), then +10, +10: 55 over the 60 s the samples span.
    rows = [("c", i * 10_000, v) for i, v in enumerate([0, 10, 20, 30, 5, 15, 25])]
    assert run("rate", rows)[0][0] == pytest.approx(55 / 60)


def test_rate_extrapolates_half_an_interval_when_samples_stop_short_of_the_window():
    # Prometheus: +20 over 20 s sampled; 20 s from each edge is over 1.1 × 10 s, so extrapolate 5 s each way.
    rows = [("c", 20_000, 100), ("c", 30_000, 110), ("c", 40_000, 120)]
    assert run("rate", rows)[0][0] == pytest.approx(20 * (30 / 20) / 60)


def test_rate_does_not_extrapolate_a_counter_below_zero():
    # The counter would reach 0 one second before the first sample: extrapolate only that far back.
    rows = [("c", 30_000, 1), ("c", 40_000, 11), ("c", 50_000, 21)]
    assert run("rate", rows)[0][0] == pytest.approx(20 * (31 / 20) / 60)


def test_rate_of_one_sample_is_null():
    assert run("rate", [("c", 5_000, 3.0)])[0][0] is None


def test_rate_over_several_series_is_the_sum_of_their_rates():
    rows = [(s, i * 10_000, i * slope) for s, slope in (("a", 1), ("b", 3)) for i in range(7)]
    assert run("rate", rows)[0][0] == pytest.approx(0.1 + 0.3)


def test_rate_per_bucket_never_spans_two_buckets():
    # Had the 20 → 25 step across the bucket boundary been counted, the second bucket would rise by 25.
    rows = [("c", i * 10_000, v) for i, v in enumerate([0, 10, 20, 25, 35, 45])]
    keys = [("ts - ts % 30000", "bucket")]
    got = run("rate", rows, keys, window=('"bucket"', '"bucket" + 30000'))
    assert got == [(0, pytest.approx(1.0)), (30_000, pytest.approx(1.0))]


def test_rate_grouped_by_a_key_named_series_still_sums_per_series_rates():
    rows = [(s, i * 10_000, i * slope) for s, slope in (("a", 1), ("b", 3)) for i in range(7)]
    got = run("rate", rows, keys=[("'all'", "series")])
    assert got == [("all", pytest.approx(0.1 + 0.3))]
