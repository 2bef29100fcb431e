"""Parser fuzzing: arbitrary input never escapes as anything but InvalidInput/LimitExceeded, and valid line
protocol written by an independent formatter round-trips to the same series keys, timestamps and values."""

from __future__ import annotations

import cramjam
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from countdb.errors import InvalidInput, LimitExceeded
from countdb.ingest import prompb_pb2
from countdb.ingest.lineprotocol import parse_lines
from countdb.ingest.remote_write import decode_write_request
from countdb.model import MAX_TIMESTAMP_MS, series_key

FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
NOW_NS = 1_700_000_000_000_000_000
PRECISIONS = ["ns", "us", "ms", "s", "m", "h", "auto"]
# Characters that matter to the grammar, weighted in beside ordinary text.
SPECIAL = st.sampled_from(list(" ,=\\\"#\t\r\n{}'.-+eEiutfTF0123456789")
                          + ["\\ ", "\\,", "\\=", "\\\\", '\\"', "9" * 4400 + "i", "1e999"])
VALID_LINE = ('cpu,host=a\\ b,region=eu\\,w value=1.5,n=-3i,u=7u,ok=true,s="x \\" y" 1451606400000000000\n'
              "mem,host=a used=2e3 1451606400\n")


def assert_consistent(parsed, body_lines: int) -> None:
    assert len(parsed.series) == len(parsed.ts_ms) == len(parsed.values)
    assert all(0 <= ts <= MAX_TIMESTAMP_MS for ts in parsed.ts_ms)
    assert all(value == value and abs(value) != float("inf") for value in parsed.values)
    assert all(1 <= error.line_number <= body_lines for error in parsed.errors)
    assert len(parsed.errors) <= parsed.lines <= body_lines


@FUZZ
@given(body=st.binary(max_size=400), precision=st.sampled_from(PRECISIONS))
def test_random_bytes_never_break_the_line_parser(body, precision):
    assert_consistent(parse_lines(body, precision, NOW_NS), body.count(b"\n") + 1)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(VALID_LINE)), st.integers(0, 3), SPECIAL), max_size=8),
       precision=st.sampled_from(PRECISIONS))
def test_mutated_valid_lines_never_break_the_line_parser(edits, precision):
    text = VALID_LINE
    for position, deleted, inserted in edits:
        text = text[:position] + inserted + text[position + deleted:]
    body = text.encode("utf-8")
    assert_consistent(parse_lines(body, precision, NOW_NS), body.count(b"\n") + 1)


NUMBER_LIKE = st.one_of(
    st.from_regex(r"[-+]?[0-9]*\.?[0-9]*(?:[eE][-+]?[0-9]*)?[iu]?", fullmatch=True),
    st.builds(lambda sign, digits, suffix: sign + "9" * digits + suffix, st.sampled_from(["", "-"]),
              st.integers(1, 6000), st.sampled_from(["", "i", "u", ".5", "e5", "e-999"])),
)


@FUZZ
@given(value=NUMBER_LIKE, precision=st.sampled_from(PRECISIONS))
def test_any_number_like_field_value_is_stored_or_rejected(value, precision):
    parsed = parse_lines(f"m f={value} 5000000000000000000".encode(), precision, NOW_NS)
    assert_consistent(parsed, 1)
    assert len(parsed.values) + len(parsed.errors) == 1


# --- round trip -----------------------------------------------------------------------------------------

# Names may hold anything line protocol can escape; not newlines (no escape exists), not '{' (Count refuses it).
NAME_TEXT = st.text(st.one_of(st.sampled_from(list(" ,=\\\"'#\t.-_:é😀")), st.characters(
    codec="utf-8", exclude_characters="\n\r{")), min_size=1, max_size=12)
TAG_KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:/\-]{0,10}", fullmatch=True)
FIELD_VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: (repr(v), v)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: (f"{v}i", float(v))),
    st.integers(0, 2**64 - 1).map(lambda v: (f"{v}u", float(v))),
    st.sampled_from(["t", "T", "true", "True", "TRUE"]).map(lambda v: (v, 1.0)),
    st.sampled_from(["f", "F", "false", "False", "FALSE"]).map(lambda v: (v, 0.0)),
    NAME_TEXT.map(lambda text: ('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"', None)),
)
UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def escape(text: str, specials: str) -> str:
    text = text.replace("\\", "\\\\")
    for char in specials:
        text = text.replace(char, "\\" + char)
    return text


@st.composite
def points(draw):
    measurement = draw(NAME_TEXT.filter(lambda text: text[0] not in "#\t"))
    tags = draw(st.dictionaries(TAG_KEYS, NAME_TEXT, max_size=4))
    fields = draw(st.dictionaries(NAME_TEXT, FIELD_VALUES, min_size=1, max_size=4))
    precision = draw(st.sampled_from(list(UNITS_NS)))
    timestamp = draw(st.one_of(st.none(), st.integers(0, min(2**63 - 1, MAX_TIMESTAMP_MS * 10**6)
                                                       // UNITS_NS[precision])))
    return measurement, tags, fields, precision, timestamp


def format_line(measurement, tags, fields, timestamp) -> str:
    line = escape(measurement, ", ")
    line += "".join(f",{escape(k, ', =')}={escape(v, ', =')}" for k, v in tags.items())
    line += " " + ",".join(f"{escape(k, ', =')}={raw}" for k, (raw, _) in fields.items())
    return line if timestamp is None else f"{line} {timestamp}"


@FUZZ
@given(point=points())
def test_valid_points_round_trip_through_line_protocol(point):
    measurement, tags, fields, precision, timestamp = point
    parsed = parse_lines(format_line(measurement, tags, fields, timestamp).encode("utf-8"), precision, NOW_NS)
    ts_ns = NOW_NS if timestamp is None else timestamp * UNITS_NS[precision]
    expected = [(series_key(measurement if name == "value" else f"{measurement}.{name}", tags), ts_ns // 10**6, value)
                for name, (_, value) in fields.items() if value is not None]
    assert parsed.errors == []
    assert list(zip(parsed.series, parsed.ts_ms, parsed.values)) == expected
    assert parsed.string_fields == len(fields) - len(expected)


@FUZZ
@given(many=st.lists(points(), min_size=2, max_size=5), crlf=st.booleans())
def test_a_body_of_many_lines_is_the_concatenation_of_its_lines(many, crlf):
    lines = [format_line(m, t, f, ts) for m, t, f, _, ts in many]
    body = ("\r\n" if crlf else "\n").join(["# generated"] + lines).encode("utf-8")
    whole = parse_lines(body, "ns", NOW_NS)
    parts = [parse_lines(line.encode("utf-8"), "ns", NOW_NS) for line in lines]
    assert whole.series == [key for part in parts for key in part.series]
    assert whole.values == [value for part in parts for value in part.values]
    assert whole.lines == len(lines) and whole.errors == []


# --- remote write ---------------------------------------------------------------------------------------


def decode_or_refuse(body: bytes) -> None:
    try:
        parsed = decode_write_request(body, 1 << 16)
    except (InvalidInput, LimitExceeded):
        return
    assert len(parsed.series) == len(parsed.ts_ms) == len(parsed.values)


@FUZZ
@given(body=st.binary(max_size=300))
def test_random_bytes_never_break_the_remote_write_decoder(body):
    decode_or_refuse(body)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_random_protobuf_inside_valid_snappy_never_breaks_the_remote_write_decoder(raw):
    decode_or_refuse(bytes(cramjam.snappy.compress_raw(raw)))


def _valid_write_request() -> bytes:
    message = prompb_pb2.WriteRequest()
    for index in range(3):
        series = message.timeseries.add()
        for name, value in [("__name__", f"metric_{index}"), ("job", "node"), ("le", "+Inf")]:
            series.labels.add(name=name, value=value)
        series.samples.add(value=index * 1.5, timestamp=1_700_000_000_000 + index)
    return message.SerializeToString()


VALID_REQUEST = _valid_write_request()


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(VALID_REQUEST) - 1), st.integers(0, 255)), min_size=1,
                      max_size=6))
def test_mutated_write_requests_never_break_the_remote_write_decoder(edits):
    raw = bytearray(VALID_REQUEST)
    for position, byte in edits:
        raw[position] = byte
    decode_or_refuse(bytes(cramjam.snappy.compress_raw(bytes(raw))))
