"""The compact JSON/NDJSON fast path: whatever it accepts, the general path accepts with the same points; whatever
the general path refuses, it leaves to that path, so errors keep naming the point (index or line)."""

from __future__ import annotations

import json
import struct

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from countdb.errors import InvalidInput, LimitExceeded
from countdb.ingest import json_batch, parse

T0 = 1_640_995_200_000
POINTS = 100


def compact_points(count: int = POINTS) -> list[dict]:
    return [{"series": f"cpu.usage_{i % 3}", "tags": {"host": f"h{i % 4}", "dc": "eu-1"}, "timestamp": T0 + i,
             "value": i * 0.1 - 3} for i in range(count)]


def array_body(points: list[dict]) -> bytes:
    return orjson.dumps(points)


def ndjson_body(points: list[dict]) -> bytes:
    return b"\n".join(orjson.dumps(point) for point in points) + b"\n"


def general(parser, body: bytes, monkeypatch):
    """What parse.py answers with the fast path switched off."""
    with monkeypatch.context() as patch:
        patch.setattr(json_batch, "array_points", lambda body: None)
        patch.setattr(json_batch, "line_points", lambda body: None)
        return parser(body, 100_000)


def rows(points) -> list[tuple[str, int, bytes]]:
    """(series, ts, value bits) per point, from Columns or a record batch: -0.0 and 0.0 differ here."""
    if isinstance(points, pa.RecordBatch):
        series, ts, values = (points.column(0).cast(pa.string()).to_pylist(), points.column(1).to_pylist(),
                              points.column(2).to_pylist())
    else:
        series, ts, values = points.series, points.ts, points.values
    return [(s, t, struct.pack("<d", v)) for s, t, v in zip(series, ts, values)]


@pytest.mark.parametrize("parser, encode", [(parse.parse_json, array_body), (parse.parse_ndjson, ndjson_body)])
def test_a_compact_batch_takes_the_fast_path_with_the_general_paths_points(parser, encode, monkeypatch):
    body = encode(compact_points())
    fast = parser(body, 100_000)
    assert isinstance(fast, pa.RecordBatch) and fast.num_rows == POINTS
    assert rows(fast) == rows(general(parser, body, monkeypatch))
    assert rows(fast)[5][0] == 'cpu.usage_2{dc="eu-1",host="h1"}'


@pytest.mark.parametrize("parser, encode", [
    (parse.parse_json, lambda points: json.dumps(points).encode()),
    (parse.parse_ndjson, lambda points: "\n".join(json.dumps(point) for point in points).encode()),
])
def test_json_dumps_default_separators_take_the_fast_path_too(parser, encode, monkeypatch):
    body = encode(compact_points())
    assert b'"timestamp": ' in body
    fast = parser(body, 100_000)
    assert isinstance(fast, pa.RecordBatch)
    assert rows(fast) == rows(general(parser, body, monkeypatch))


def test_key_order_extra_keys_and_repeated_keys_read_as_orjson_reads_them(monkeypatch):
    points = compact_points()
    points[1] = {"tags": {"dc": "eu-1", "host": "h1"}, "extra": [1, {"x": 2}], "series": "cpu.usage_1",
                 "timestamp": T0 + 1, "value": 5}
    body = array_body(points)
    repeated = b'"value":"ignored","timestamp":-7,"series":"nope","series":"cpu.usage_1","extra"'
    body = body.replace(b'"extra"', repeated, 1)
    fast = parse.parse_json(body, 100_000)
    assert isinstance(fast, pa.RecordBatch)
    assert rows(fast) == rows(general(parse.parse_json, body, monkeypatch))
    assert rows(fast)[1] == ('cpu.usage_1{dc="eu-1",host="h1"}', T0 + 1, struct.pack("<d", 5.0))


def test_two_spellings_of_one_series_share_one_dictionary_entry():
    points = compact_points()
    points[7]["tags"] = dict(reversed(list(points[7]["tags"].items())))
    batch = parse.parse_json(array_body(points), 100_000)
    dictionary = batch.column(0).dictionary.to_pylist()
    assert len(dictionary) == len(set(dictionary)) == 12
    assert batch.column(0).cast(pa.string())[7].as_py() == 'cpu.usage_1{dc="eu-1",host="h3"}'


BAD_VALUES = [
    ("value", "x", "points[77].value"),
    ("value", True, "points[77].value"),
    ("value", None, "points[77].value"),
    ("timestamp", -1, "points[77].timestamp"),
    ("timestamp", 1.5, "points[77].timestamp"),
    ("timestamp", 99_999_999_999_999_999, "points[77].timestamp"),
    ("series", "", "points[77].series"),
    ("series", "bad\u0001name", "points[77].series"),
    ("tags", {"host": 5}, "points[77].tags"),
    ("tags", {"bad key": "v"}, "points[77].tags"),
]


@pytest.mark.parametrize("field, bad, where", BAD_VALUES)
def test_one_bad_point_rejects_the_batch_naming_its_index_or_line(field, bad, where):
    points = compact_points()
    points[77][field] = bad
    with pytest.raises((InvalidInput, LimitExceeded)) as array_error:
        parse.parse_json(array_body(points), 100_000)
    assert where in array_error.value.message and array_error.value.index == 77
    with pytest.raises((InvalidInput, LimitExceeded)) as line_error:
        parse.parse_ndjson(ndjson_body(points), 100_000)
    assert line_error.value.message.startswith("line 78: ") and line_error.value.line == 78
    assert where.replace("points[77].", "line 78: ") in line_error.value.message  # the field is named too


@pytest.mark.parametrize("raw", [b"1e999", b"-1e400", b"NaN"])
def test_numbers_beyond_float64_are_refused_as_the_general_path_refuses_them(raw):
    body = array_body(compact_points()).replace(b'"value":-3.0}', b'"value":' + raw + b"}", 1)
    with pytest.raises(InvalidInput):
        parse.parse_json(body, 100_000)


def test_minus_zero_is_stored_as_the_general_path_stores_it(monkeypatch):
    body = array_body(compact_points()).replace(b'"value":-3.0}', b'"value":-0}', 1)
    assert rows(parse.parse_json(body, 100_000)) == rows(general(parse.parse_json, body, monkeypatch))
    assert rows(parse.parse_json(body, 100_000))[0][2] == struct.pack("<d", 0.0)


def test_a_separator_inside_a_string_is_not_a_point_boundary(monkeypatch):
    points = compact_points()
    points[3]["tags"]["note"] = '},{"series":"x","timestamp":1,"value":2'
    body = array_body(points)
    assert rows(parse.parse_json(body, 100_000)) == rows(general(parse.parse_json, body, monkeypatch))


def test_an_ndjson_point_split_over_two_lines_is_refused():
    body = ndjson_body(compact_points()).replace(b',"timestamp":', b',\n"timestamp":', 1)
    with pytest.raises(InvalidInput) as error:
        parse.parse_ndjson(body, 100_000)
    assert error.value.line == 1


def test_blank_lines_crlf_and_spaces_still_parse_by_the_general_path(monkeypatch):
    body = ndjson_body(compact_points())
    spaced = b"[ " + array_body(compact_points())[1:]
    for variant in (body.replace(b"\n", b"\n\n", 3), body.replace(b"\n", b"\r\n"), spaced):
        parser = parse.parse_json if variant.startswith(b"[") else parse.parse_ndjson
        assert json_batch.array_points(variant) is None and json_batch.line_points(variant) is None
        assert len(parser(variant, 100_000)) == POINTS


def test_the_point_limit_applies_to_the_fast_path():
    with pytest.raises(LimitExceeded):
        parse.parse_json(array_body(compact_points()), POINTS - 1)


SPECIAL = st.sampled_from(list(' ,:{}[]"\\\n-+.eE0123456789')
                          + ["},{", "}\n{", '"timestamp":', ',"value":', "-0", "1e999", '\\"', "\u0001", "null", "true",
                             ", ", ": "])


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 3), SPECIAL), min_size=1, max_size=4),
       lines=st.booleans(), spaced=st.booleans())
def test_mutated_batches_are_parsed_exactly_as_the_general_path_parses_them(edits, lines, spaced):
    parser, encode = (parse.parse_ndjson, ndjson_body) if lines else (parse.parse_json, array_body)
    text = encode(compact_points(70)).decode()
    if spaced:
        text = text.replace('","', '", "').replace('":', '": ').replace("},{", "}, {").replace(',"', ', "')
    for position, deleted, inserted in edits:
        position %= len(text) + 1
        text = text[:position] + inserted + text[position + deleted:]
    body = text.encode()
    fast = (json_batch.line_points if lines else json_batch.array_points)(body)
    with pytest.MonkeyPatch.context() as monkeypatch:
        try:
            expected = rows(general(parser, body, monkeypatch))
        except (InvalidInput, LimitExceeded):
            expected = None
    if fast is not None:
        assert rows(fast) == expected
