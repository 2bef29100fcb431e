"""Big compact JSON-array and NDJSON batches (the shape agents and the benchmark send) against real gunicorn:
stored exactly, readable from every worker, and still all-or-nothing with the bad point named."""

from __future__ import annotations

import orjson
import pytest

T0 = 1_640_995_200_000
POINTS = 500


def batch(series: str, count: int = POINTS) -> list[dict]:
    return [{"series": series, "tags": {"host": f"h{i % 2}", "dc": "eu-1"}, "timestamp": T0 + i,
             "value": i / 7 - 20} for i in range(count)]


def ndjson(points: list[dict]) -> bytes:
    return b"\n".join(orjson.dumps(point) for point in points) + b"\n"


FORMATS = [("application/json", orjson.dumps), ("application/x-ndjson", ndjson)]


@pytest.mark.parametrize("content_type, encode", FORMATS)
def test_a_compact_batch_is_stored_exactly(server, content_type, encode):
    series = f"compact.{content_type.split('/')[1]}"
    response = server.post("/insert", data=encode(batch(series)), headers={"Content-Type": content_type})
    assert response.status_code == 201 and response.json() == {"status": "created", "points": POINTS}
    for host in ("h0", "h1"):
        got = server.get(f'/query/range/{series}{{dc="eu-1",host="{host}"}}',
                         params={"start": T0, "end": T0 + POINTS}).json()
        first = 0 if host == "h0" else 1
        assert got == [{"timestamp": T0 + i, "value": i / 7 - 20} for i in range(first, POINTS, 2)]


@pytest.mark.parametrize("content_type, encode", FORMATS)
def test_one_bad_point_in_a_compact_batch_stores_nothing_and_is_named(server, content_type, encode):
    series = f"compact.bad.{content_type.split('/')[1]}"
    points = batch(series)
    points[321]["value"] = "NaN"
    response = server.post("/insert", data=encode(points), headers={"Content-Type": content_type})
    where = "points[321].value" if content_type == "application/json" else "line 322: "
    assert response.status_code == 400 and where in response.json()["error"]
    got = server.get(f'/query/range/{series}{{dc="eu-1",host="h0"}}', params={"start": 0, "end": T0 * 2}).json()
    assert got == []
