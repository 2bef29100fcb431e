"""Fuzz targets: one function per parser or decoder a client (or a damaged disk) can feed, taking raw bytes.

Invariant checked by every target: the input is parsed or refused with one of Count's domain errors
(CountError: InvalidInput, LimitExceeded…); any other exception is a bug and escapes to the fuzzer. The WAL
target also checks that a damaged segment never yields a record that was not written.
Run by bench/contract/fuzz.py (atheris, coverage-guided), bounded in tests/contract/test_fuzz.py.
"""

from __future__ import annotations

import gzip
import io
import struct
import tempfile
import time
from pathlib import Path

import cramjam
import orjson
import pyarrow as pa

from countdb.api import media
from countdb.errors import CountError
from countdb.ingest import parse, prompb_pb2
from countdb.ingest.lineprotocol import normalize_precision, parse_lines
from countdb.ingest.remote_write import decode_write_request
from countdb.query.aggregations import parse_aggregation
from countdb.query.buckets import parse_fill, parse_step
from countdb.query.selection import parse_group_by
from countdb.query.selectors import matcher_sql, parse_selector
from countdb.wal.record import Columns, decode_points, encode_points
from countdb.wal.segment import MAGIC, encode_frame, parse_frames

NOW_NS = 1_700_000_000_000_000_000
MAX_POINTS = 10_000
MAX_BODY_BYTES = 1 << 20
PRECISIONS = [("v1", ""), ("v1", "u"), ("v2", "s"), ("v3", "auto"), ("v3", "millisecond"), ("v1", "h")]


def _refused(call, *args) -> None:
    """Call the parser; a CountError is a refusal, which is fine. Anything else propagates (a crash)."""
    try:
        call(*args)
    except CountError:
        pass


def _text(data: bytes) -> str:
    """What a query string or a text body can carry: valid UTF-8 (the server decodes before parsing)."""
    return data.decode("utf-8", "replace")


def line_protocol(data: bytes) -> None:
    api, precision = PRECISIONS[data[0] % len(PRECISIONS)] if data else ("v1", "")
    parsed = parse_lines(data[1:], normalize_precision(precision, api), NOW_NS)
    assert len(parsed.series) == len(parsed.ts_ms) == len(parsed.values)
    assert all(value == value for value in parsed.values)


def json_body(data: bytes) -> None:
    _refused(parse.parse_json, data, MAX_POINTS)


def ndjson_body(data: bytes) -> None:
    _refused(parse.parse_ndjson, data, MAX_POINTS)


def csv_body(data: bytes) -> None:
    _refused(parse.parse_csv, data, MAX_POINTS)


def arrow_body(data: bytes) -> None:
    _refused(parse.parse_arrow, data, MAX_POINTS)


def gzip_body(data: bytes) -> None:
    """Content-Encoding: gzip bodies, inflated under the body limit (a bomb is refused, not inflated)."""
    _refused(media._gunzip, data, MAX_BODY_BYTES)


def remote_write_body(data: bytes) -> None:
    """Half the inputs go in as raw bytes (snappy framing fuzzed), half snappy-compressed (protobuf fuzzed)."""
    body = bytes(cramjam.snappy.compress_raw(data[1:])) if data[:1] == b"\x01" else data
    _refused(decode_write_request, body, MAX_BODY_BYTES)


def selector(data: bytes) -> None:
    try:
        parsed = parse_selector(_text(data))
    except CountError:
        return
    params: dict = {}
    for index, matcher in enumerate(parsed.matchers):
        matcher_sql(matcher, params, index)


def query_parameters(data: bytes) -> None:
    """step=, fill=, aggregation= with quantile=, group_by=: the query-string parsers of api/query_params.py."""
    parts = _text(data).split("\x00")
    step, fill, aggregation, quantile, group_by = (parts + [None] * 5)[:5]
    _refused(parse_step, step or "")
    _refused(parse_fill, fill)
    _refused(parse_aggregation, aggregation, quantile, "mean")
    _refused(parse_group_by, group_by)


_SQL_STATE: dict = {}


def sql_sandbox(data: bytes) -> None:
    """A statement through the sandbox's check and, when it passes, its execution (1 s time limit)."""
    if "service" not in _SQL_STATE:
        _SQL_STATE["service"] = _sql_service()
    try:
        result = _SQL_STATE["service"].execute(_text(data))
    except CountError:
        return
    with result:
        try:
            for _ in result:
                pass
        except CountError:
            pass


def _sql_service():
    from countdb.catalog.migrate import migrate
    from countdb.datadir import DataDir
    from countdb.query.engine import QueryEngine
    from countdb.query.sandbox import Sandbox
    from countdb.query.sql import SqlService

    datadir = DataDir(Path(tempfile.mkdtemp(prefix="count-fuzz-sql-")) / "data").create()
    migrate(datadir.catalog_path)
    engine = QueryEngine(datadir, 256, threads=1, timeout_seconds=1)
    return SqlService(engine, Sandbox(datadir.time_blocks, 256, 1, 10_000, threads=1))


def _wal_records() -> list[bytes]:
    """Frames of the three record types, as a writer appends them."""
    records = [encode_points(Columns(["cpu", "mem{host=\"a\"}"], [1, 2], [0.5, -1.0])),
               encode_points(pa.record_batch([pa.array(["x"] * 40), pa.array(range(40), pa.int64()),
                                              pa.array([1.0] * 40)], names=["series", "ts", "value"])),
               encode_points(pa.record_batch([pa.array(["y"] * 3).dictionary_encode(),
                                              pa.array([1, 2, 3], pa.int64()), pa.array([2.0] * 3)],
                                             names=["series", "ts", "value"]))]
    return [b"".join(bytes(part) for part in encode_frame(kind, seq, payload))
            for seq, (kind, payload) in enumerate(records, start=1)]


WAL_FRAMES = _wal_records()


def wal_segment(data: bytes) -> None:
    """A segment cut, bit-flipped and with its frames reordered: parse_frames never raises, and every frame it
    returns is one that was written (a CRC lets no damaged record through); decoding those never fails."""
    if len(data) < 5:
        return
    order = [WAL_FRAMES[b % len(WAL_FRAMES)] for b in data[:3]]  # three frames, any order, repeats allowed
    segment = bytearray(b"".join(order))
    cut, flips = struct.unpack_from("<H", data, 3)[0], data[5:]  # bytes cut off the end; (position, bit) pairs
    for i in range(0, len(flips) - 1, 2):
        segment[(flips[i] << 4 | flips[i + 1]) % len(segment)] ^= 1 << (flips[i + 1] % 8)
    segment = segment[: len(segment) - cut % (len(segment) + 1)]
    frames, end, problem = parse_frames(memoryview(bytes(segment)), len(MAGIC))
    assert end <= len(MAGIC) + len(segment)
    assert problem is not None or end == len(MAGIC) + len(segment)
    for frame in frames:
        assert b"".join(bytes(part) for part in encode_frame(frame.record_type, frame.seq, frame.payload)) \
            in WAL_FRAMES
        decode_points(frame.record_type, frame.payload)


def wal_payload(data: bytes) -> None:
    """A record payload that passed its CRC but is malformed (a writer bug): decode_points may only raise
    ValueError, as documented, which recovery turns into a CorruptSegment."""
    if not data:
        return
    try:
        decode_points(1 + data[0] % 3, data[1:])
    except ValueError:
        pass


TARGETS = {
    "line_protocol": line_protocol, "json": json_body, "ndjson": ndjson_body, "csv": csv_body,
    "arrow": arrow_body, "gzip": gzip_body, "remote_write": remote_write_body, "selector": selector,
    "query_parameters": query_parameters, "sql_sandbox": sql_sandbox, "wal_segment": wal_segment,
    "wal_payload": wal_payload,
}


def seeds(target: str) -> list[bytes]:
    """Valid inputs to start each target's corpus from, so mutation begins inside the format."""
    points = [{"series": "cpu", "tags": {"host": "a"}, "timestamp": 1_700_000_000_000, "value": 1.5},
              {"series": "mem", "timestamp": 0, "value": -2}]
    arrow = io.BytesIO()
    table = pa.table({"series": ["cpu", "mem"], "timestamp": pa.array([1, 2], pa.int64()), "value": [1.0, 2.0]})
    with pa.ipc.new_stream(arrow, table.schema) as writer:
        writer.write_table(table)
    request = prompb_pb2.WriteRequest()
    series = request.timeseries.add()
    series.labels.add(name="__name__", value="up")
    series.labels.add(name="job", value="node")
    series.samples.add(value=1.0, timestamp=1_700_000_000_000)
    return {
        "line_protocol": [b"\x00cpu,host=a value=1.5,n=3i 1700000000000000000\nmem f=\"s\",ok=t\n",
                          b"\x03m\\ x,t=a\\,b f=-1e3 1700000000\n"],
        "json": [orjson.dumps(points[0]), orjson.dumps(points)],
        "ndjson": [b"\n".join(orjson.dumps(p) for p in points)],
        "csv": [b"series,timestamp,value\ncpu,1,1.5\n\"a,b\",2,3\n"],
        "arrow": [arrow.getvalue()],
        "gzip": [gzip.compress(orjson.dumps(points)), gzip.compress(b"\0" * 100_000)],
        "remote_write": [b"\x01" + request.SerializeToString(),
                         bytes(cramjam.snappy.compress_raw(request.SerializeToString()))],
        "selector": [b'cpu{host="a",region=~"eu|us",job!~"x.*",le!=\'1\'}', b'{__name__=~"cpu\\\\..*"}'],
        "query_parameters": [b"1h30m\x00previous\x00p99\x00\x00host,__name__", b"10s\x000\x00quantile\x000.5\x00"],
        "sql_sandbox": [b"SELECT name, max(value) FROM points GROUP BY 1", b"SELECT * FROM series LIMIT 3"],
        "wal_segment": [b"\x00\x01\x02\x00\x00", b"\x02\x01\x00\x05\x00\x10\x07"],
        "wal_payload": [b"\x00" + WAL_FRAMES[0][17:], b"\x01" + WAL_FRAMES[1][17:]],
    }[target]


def run_once(target: str, data: bytes, time_limit_seconds: float) -> float:
    """Run one input (a regression case), failing if it takes longer than the limit; returns seconds."""
    started = time.monotonic()
    TARGETS[target](data)
    elapsed = time.monotonic() - started
    assert elapsed < time_limit_seconds, f"{target}: one input took {elapsed:.1f} s"
    return elapsed
