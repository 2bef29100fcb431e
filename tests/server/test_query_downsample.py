"""step= on /query/range/{series} and every aggregation on /query/aggregated/{series}, against real gunicorn,
over points that are partly flushed to blocks and partly still in the WAL (some overwritten)."""

from __future__ import annotations

import statistics

import pytest

T0 = 1_640_995_200_000  # 2022-01-01T00:00:00Z, a multiple of every step used here
MIN = 60_000


def insert(node, points):
    response = node.post("/insert", json=[{"series": s, "timestamp": t, "value": v} for s, t, v in points])
    assert response.status_code == 201, response.text


def range_of(node, series, **params):
    response = node.get(f"/query/range/{series}", params=params)
    assert response.status_code == 200, response.text
    return [(p["timestamp"], p["value"]) for p in response.json()]


@pytest.fixture(scope="module")
def mixed(count_server):
    """ds.mixed: one point every 10 s for 10 minutes, value = minute*10 + second/10; the first 5 minutes are
    flushed to a block, the rest are unflushed, and minute 2 is overwritten (+1000) while unflushed."""
    node = count_server(MEMORY_BUFFER_SIZE=100_000, WORKERS=2)
    insert(node, [("ds.mixed", T0 + i * 10_000, (i // 6) * 10 + i % 6) for i in range(30)])
    assert node.stop() == 0
    node = count_server(data_dir=node.data_dir, MEMORY_BUFFER_SIZE=100_000, WORKERS=2)
    insert(node, [("ds.mixed", T0 + i * 10_000, (i // 6) * 10 + i % 6) for i in range(30, 60)])
    insert(node, [("ds.mixed", T0 + i * 10_000, 1000 + (i // 6) * 10 + i % 6) for i in range(12, 18)])
    yield node
    node.stop()


def minute_values(minute: int) -> list[float]:
    return [float(minute * 10 + s + (1000 if minute == 2 else 0)) for s in range(6)]


def test_without_step_the_answer_is_the_raw_points(mixed):
    got = range_of(mixed, "ds.mixed", start=T0, end=T0 + 10 * MIN)
    assert len(got) == 60 and got[12] == (T0 + 120_000, 1020.0)


def test_step_answers_one_mean_per_non_empty_bucket_labelled_by_its_start(mixed):
    got = range_of(mixed, "ds.mixed", start=T0, end=T0 + 10 * MIN - 1, step="1m")
    assert got == [(T0 + m * MIN, statistics.mean(minute_values(m))) for m in range(10)]


def test_buckets_are_aligned_to_the_epoch_not_to_start(mixed):
    got = range_of(mixed, "ds.mixed", start=T0 + 30_000, end=T0 + 150_000, step="1m", aggregation="count")
    assert got == [(T0, 3), (T0 + MIN, 6), (T0 + 2 * MIN, 4)]


@pytest.mark.parametrize("aggregation, pick", [
    ("sum", sum), ("min", min), ("max", max), ("count", len), ("first", lambda v: v[0]), ("last", lambda v: v[-1]),
    ("median", statistics.median), ("stddev", statistics.stdev), ("avg", statistics.mean),
    ("p90", lambda v: statistics.quantiles(v, n=10, method="inclusive")[-1]),
])
def test_every_aggregation_applies_per_bucket(mixed, aggregation, pick):
    got = range_of(mixed, "ds.mixed", start=T0, end=T0 + 5 * MIN - 1, step="1m", aggregation=aggregation)
    assert got == [(T0 + m * MIN, pytest.approx(pick(minute_values(m)))) for m in range(5)]


def test_quantile_parameter_per_bucket(mixed):
    got = range_of(mixed, "ds.mixed", start=T0, end=T0 + MIN - 1, step="1m", quantile="0.5")
    assert got == [(T0, pytest.approx(2.5))]


def test_rate_per_bucket_handles_counter_resets(mixed):
    # A counter rising 1/s that resets to 0 at 01:00 and keeps rising 1/s: the rate stays 1 per second.
    insert(mixed, [("ds.counter", T0 + s * 1000, float(s % 60)) for s in range(0, 120, 5)])
    got = range_of(mixed, "ds.counter", start=T0, end=T0 + 2 * MIN - 1, step="1m", aggregation="rate")
    assert got == [(T0, pytest.approx(1.0)), (T0 + MIN, pytest.approx(1.0))]


@pytest.mark.parametrize("fill, expected", [
    ("null", [1.0, None, None, 4.0, None]),
    ("0", [1.0, 0.0, 0.0, 4.0, 0.0]),
    ("previous", [1.0, 1.0, 1.0, 4.0, 4.0]),
    ("linear", [1.0, 2.0, 3.0, 4.0, None]),
])
def test_fill_answers_every_bucket_of_the_range(mixed, fill, expected):
    insert(mixed, [("ds.gaps", T0 + 5_000, 1.0), ("ds.gaps", T0 + 3 * MIN, 4.0)])
    got = range_of(mixed, "ds.gaps", start=T0, end=T0 + 5 * MIN - 1, step="1m", fill=fill)
    assert got == [(T0 + m * MIN, v) for m, v in enumerate(expected)]


def test_fill_none_leaves_empty_buckets_out(mixed):
    insert(mixed, [("ds.gaps2", T0 + 5_000, 1.0), ("ds.gaps2", T0 + 3 * MIN, 4.0)])
    got = range_of(mixed, "ds.gaps2", start=T0, end=T0 + 5 * MIN - 1, step="1m", fill="none")
    assert got == [(T0, 1.0), (T0 + 3 * MIN, 4.0)]


@pytest.mark.parametrize("params, field", [
    ({"aggregation": "sum"}, "aggregation"), ({"fill": "null"}, "fill"), ({"quantile": "0.5"}, "quantile"),
    ({"step": "60"}, "step"), ({"step": "1y"}, "step"), ({"step": "1m", "fill": "maybe"}, "fill"),
    ({"step": "1m", "aggregation": "mode"}, "aggregation"),
    ({"step": "1ms", "fill": "null", "end": T0 + 100 * MIN}, "fill"),
])
def test_bad_step_parameters_get_400_naming_the_field(mixed, params, field):
    response = mixed.get("/query/range/ds.mixed", params={"start": T0, "end": T0 + 10 * MIN, **params})
    assert response.status_code == 400 and response.json()["error"].startswith(field)


@pytest.mark.parametrize("aggregation, expected", [
    ("sum", 1 + 4.0), ("count", 2), ("first", 1.0), ("last", 4.0), ("median", 2.5), ("p99", pytest.approx(3.97)),
    ("stddev", pytest.approx(statistics.stdev([1.0, 4.0]))),
])
def test_aggregated_answers_a_bare_number_for_every_aggregation(mixed, aggregation, expected):
    insert(mixed, [("ds.agg", T0 + 5_000, 1.0), ("ds.agg", T0 + 3 * MIN, 4.0)])
    response = mixed.get("/query/aggregated/ds.agg", params={"start": T0, "end": T0 + 5 * MIN,
                                                             "aggregation": aggregation})
    assert response.status_code == 200 and response.json() == expected


@pytest.mark.parametrize("aggregation, expected", [("count", 0), ("median", None), ("rate", None), ("p90", None)])
def test_aggregated_over_nothing_is_zero_for_count_and_null_otherwise(mixed, aggregation, expected):
    response = mixed.get("/query/aggregated/ds.none", params={"start": 0, "end": 10, "aggregation": aggregation})
    assert response.status_code == 200 and response.json() == expected


def test_aggregated_counts_each_point_once_across_blocks_and_wal(mixed):
    params = {"start": T0, "end": T0 + 10 * MIN, "aggregation": "count"}
    assert mixed.get("/query/aggregated/ds.mixed", params=params).json() == 60
    params["aggregation"] = "max"
    assert mixed.get("/query/aggregated/ds.mixed", params=params).json() == 1025.0


def test_aggregated_rate_over_the_whole_range(mixed):
    # 0 20 40 | 0 20 40 | 0 20 40 every 10 s: +40, reset (+0), +40, reset (+0), +40 = 120 over 80 s.
    insert(mixed, [("ds.rate", T0 + s * 1000, float(s % 30) * 2) for s in range(0, 90, 10)])
    response = mixed.get("/query/aggregated/ds.rate", params={"start": T0, "end": T0 + 80_000, "aggregation": "rate"})
    assert response.json() == pytest.approx(120 / 80)


def test_unknown_aggregation_is_named_in_the_400(mixed):
    response = mixed.get("/query/aggregated/ds.mixed", params={"start": 0, "end": 1, "aggregation": "mode"})
    assert response.status_code == 400 and "'mode'" in response.json()["error"]


LONG_MAX, LONG_MIN = 2**63 - 1, -(2**63)


@pytest.mark.parametrize("params, status", [
    ({"start": 0, "end": 10**20}, 400),
    ({"start": -(10**20), "end": 5}, 400),
    ({"start": 0, "end": LONG_MAX, "step": "1d"}, 200),
    ({"start": LONG_MAX, "end": LONG_MAX, "step": "1ms", "fill": "null"}, 200),
    ({"start": LONG_MAX - 1, "end": LONG_MAX, "step": "1ms", "aggregation": "rate"}, 200),
    ({"start": LONG_MIN, "end": LONG_MIN + 1, "step": "1ms", "fill": "previous"}, 200),
])
def test_extreme_bounds_are_answered_or_refused_never_a_500(mixed, params, status):
    response = mixed.get("/query/range/ds.mixed", params=params)
    assert response.status_code == status, response.text


def test_a_range_reaching_past_every_timestamp_still_finds_the_points(mixed):
    assert len(range_of(mixed, "ds.mixed", start=LONG_MIN, end=LONG_MAX)) == 60
