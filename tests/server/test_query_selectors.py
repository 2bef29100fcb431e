"""match= selectors on /query/range and /query/aggregated against real gunicorn: many series at once,
grouped aggregates, the series cap, and the same core rules (flushed + unflushed, last write wins)."""

from __future__ import annotations

import pytest

T0 = 1_640_995_200_000
MIN = 60_000
HOSTS = {"h1": "eu", "h2": "eu", "h10": "us", "h3": "us"}


def insert(node, points):
    body = [{"series": name, "tags": tags, "timestamp": t, "value": v} for name, tags, t, v in points]
    response = node.post("/insert", json=body)
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def node(count_server):
    """sel.cpu{host,region}: value = host number * 10 + minute, one point a minute for 4 minutes; minutes 0-1
    flushed, 2-3 unflushed; h1's minute 1 overwritten with 500 while unflushed. Also sel.mem{host="h1"}."""
    def points(minutes):
        return [("sel.cpu", {"host": h, "region": r}, T0 + m * MIN, float(int(h[1:]) * 10 + m))
                for h, r in HOSTS.items() for m in minutes]
    first = count_server(MEMORY_BUFFER_SIZE=100_000, WORKERS=2)
    insert(first, points([0, 1]))
    assert first.stop() == 0
    server = count_server(data_dir=first.data_dir, MEMORY_BUFFER_SIZE=100_000, WORKERS=2, QUERY_MAX_SERIES=4)
    insert(server, points([2, 3]))
    insert(server, [("sel.cpu", {"host": "h1", "region": "eu"}, T0 + MIN, 500.0),
                    ("sel.mem", {"host": "h1"}, T0, 1.0)])
    yield server
    server.stop()


def series_points(node, match, **params):
    response = node.get("/query/range", params={"match": match, "start": T0, "end": T0 + 10 * MIN, **params})
    assert response.status_code == 200, response.text
    return {entry["key"]: [(p["timestamp"], p["value"]) for p in entry["points"]]
            for entry in response.json()["series"]}


def hosts_of(got: dict) -> list[str]:
    return sorted(key.split('host="')[1].split('"')[0] for key in got)


@pytest.mark.parametrize("match, hosts", [
    ('sel.cpu{region="eu"}', ["h1", "h2"]),
    ('sel.cpu{region!="eu"}', ["h10", "h3"]),
    ('sel.cpu{host=~"h1"}', ["h1"]),                 # fully anchored: not h10
    ('sel.cpu{host=~"h1.*"}', ["h1", "h10"]),
    ('sel.cpu{host!~"h1.*",region="us"}', ["h3"]),
    ('{__name__="sel.cpu", host="h2"}', ["h2"]),
    ('{__name__=~"sel\\\\..*", host="h1"}', ["h1", "h1"]),  # sel.cpu and sel.mem
])
def test_matchers_select_series(node, match, hosts):
    assert hosts_of(series_points(node, match)) == hosts


def test_each_series_carries_key_name_tags_and_its_points_with_last_write_winning(node):
    response = node.get("/query/range", params={"match": 'sel.cpu{host="h1"}', "start": T0, "end": T0 + 10 * MIN})
    assert response.json() == {"series": [{
        "key": 'sel.cpu{host="h1",region="eu"}', "name": "sel.cpu", "tags": {"host": "h1", "region": "eu"},
        "points": [{"timestamp": T0, "value": 10.0}, {"timestamp": T0 + MIN, "value": 500.0},
                   {"timestamp": T0 + 2 * MIN, "value": 12.0}, {"timestamp": T0 + 3 * MIN, "value": 13.0}]}]}


def test_series_are_ordered_by_key_and_bounds_are_inclusive(node):
    got = series_points(node, 'sel.cpu{region="us"}', start=T0 + MIN, end=T0 + 2 * MIN)
    assert list(got) == ['sel.cpu{host="h10",region="us"}', 'sel.cpu{host="h3",region="us"}']
    assert got['sel.cpu{host="h3",region="us"}'] == [(T0 + MIN, 31.0), (T0 + 2 * MIN, 32.0)]


def test_a_selector_matching_nothing_answers_no_series(node):
    assert series_points(node, 'sel.cpu{host="nowhere"}') == {}


def test_step_buckets_each_series(node):
    got = series_points(node, 'sel.cpu{region="eu"}', step="2m", aggregation="max")
    assert got == {'sel.cpu{host="h1",region="eu"}': [(T0, 500.0), (T0 + 2 * MIN, 13.0)],
                   'sel.cpu{host="h2",region="eu"}': [(T0, 21.0), (T0 + 2 * MIN, 23.0)]}


def test_step_with_fill_fills_each_series_over_the_range(node):
    got = series_points(node, 'sel.cpu{host="h2"}', end=T0 + 5 * MIN, step="1m", fill="previous")
    assert got == {'sel.cpu{host="h2",region="eu"}': [(T0 + m * MIN, 20.0 + min(m, 3)) for m in range(6)]}


def groups(node, **params):
    response = node.get("/query/aggregated", params={"start": T0, "end": T0 + 10 * MIN, **params})
    assert response.status_code == 200, response.text
    return response.json()["groups"]


def test_grouped_aggregates_pool_the_points_of_each_group(node):
    assert groups(node, match="sel.cpu", aggregation="count", group_by="region") == [
        {"tags": {"region": "eu"}, "value": 8}, {"tags": {"region": "us"}, "value": 8}]
    assert groups(node, match="sel.cpu", aggregation="max", group_by="region,host") == [
        {"tags": {"region": "eu", "host": "h1"}, "value": 500.0},
        {"tags": {"region": "eu", "host": "h2"}, "value": 23.0},
        {"tags": {"region": "us", "host": "h10"}, "value": 103.0},
        {"tags": {"region": "us", "host": "h3"}, "value": 33.0}]


def test_without_group_by_one_group_covers_every_matched_series(node):
    assert groups(node, match='sel.cpu{region="us"}', aggregation="sum") == [
        {"tags": {}, "value": sum(float(h * 10 + m) for h in (10, 3) for m in range(4))}]


def test_a_group_key_some_series_lack_is_left_out_of_their_tags(node):
    got = groups(node, match='{host="h1"}', aggregation="count", group_by="__name__,region")
    assert got == [{"tags": {"__name__": "sel.cpu", "region": "eu"}, "value": 4},
                   {"tags": {"__name__": "sel.mem"}, "value": 1}]


def test_grouped_rate_sums_the_rate_of_each_series(node):
    # Every sel.cpu series rises 1 per minute (h1 is disturbed by the overwrite, so leave it out).
    got = groups(node, match='sel.cpu{host!="h1"}', aggregation="rate", group_by="region", end=T0 + 3 * MIN)
    assert got == [{"tags": {"region": "eu"}, "value": pytest.approx(1 / 60)},
                   {"tags": {"region": "us"}, "value": pytest.approx(2 / 60)}]


@pytest.mark.parametrize("path, params, problem", [
    ("/query/range", {"match": 'sel.cpu{host="h1"'}, "match: bad selector"),
    ("/query/range", {"match": 'sel.cpu{host=~"h(1"}'}, "match: bad regex 'h(1' for host"),
    ("/query/range", {"match": "{}"}, "match: selector '{}' names no series"),
    ("/query/range", {}, "match: query parameter is required"),
    ("/query/range", {"match": "sel.cpu", "step": "1m", "aggregation": "mode"}, "aggregation: 'mode'"),
    ("/query/aggregated", {"match": "sel.cpu"}, "aggregation: query parameter is required"),
    ("/query/aggregated", {"match": "sel.cpu", "aggregation": "sum", "group_by": "a b"}, "group_by: 'a b'"),
    ("/query/aggregated", {"match": "sel.cpu", "aggregation": "sum", "group_by": "value"}, "group_by: 'value'"),
])
def test_bad_selections_get_400_naming_the_problem(node, path, params, problem):
    response = node.get(path, params={"start": T0, "end": T0 + MIN, **params})
    assert response.status_code == 400 and response.json()["error"].startswith(problem), response.text


def test_selecting_more_series_than_the_cap_gets_400_naming_the_limit(node):
    for path, extra in (("/query/range", {}), ("/query/aggregated", {"aggregation": "sum"})):
        response = node.get(path, params={"match": '{host=~".+"}', "start": T0, "end": T0 + MIN, **extra})
        assert response.status_code == 400
        assert "selects 5 series, over the limit of 4 (QUERY_MAX_SERIES)" in response.json()["error"]


def test_exactly_the_cap_is_allowed(node):
    assert len(series_points(node, "sel.cpu")) == 4
