"""Remote write decoder: real snappy-compressed WriteRequest bodies built with the same generated module."""

from __future__ import annotations

import math
import struct

import pytest

from countdb.errors import InvalidInput, LimitExceeded
from countdb.ingest import prompb_pb2, remote_write
from countdb.ingest.remote_write import STALE_NAN_BITS, decode_write_request
from countdb.model import MAX_SERIES_KEY_BYTES, MAX_TAGS, MAX_TIMESTAMP_MS, series_key
from support.remote_write import compress, request

LIMIT = 1 << 20
STALE_NAN = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """Hand-encode one protobuf field of wire type 2, for parts the generated module would refuse to build."""
    header, size = bytes([field_number << 3 | 2]), len(payload)
    while size >= 0x80:
        header, size = header + bytes([size & 0x7F | 0x80]), size >> 7
    return header + bytes([size]) + payload


def decode(message: prompb_pb2.WriteRequest, limit: int = LIMIT):
    return decode_write_request(compress(message.SerializeToString()), limit)


def rows(parsed):
    return list(zip(parsed.series, parsed.ts_ms, parsed.values))


UP = [("__name__", "up"), ("job", "node"), ("instance", "a:9100")]
UP_KEY = series_key("up", {"job": "node", "instance": "a:9100"})


def test_round_trip_of_several_series_and_samples():
    parsed = decode(request((UP, [(1.0, 1000), (0.0, 2000)]),
                            ([("__name__", "temp_celsius"), ("room", "b")], [(21.5, 1500)])))
    assert rows(parsed) == [(UP_KEY, 1000, 1.0), (UP_KEY, 2000, 0.0),
                            (series_key("temp_celsius", {"room": "b"}), 1500, 21.5)]
    assert (parsed.staleness_markers, parsed.invalid, parsed.invalid_samples) == (0, [], 0)


def test_label_order_does_not_change_the_series_key():
    first = decode(request((UP, [(1.0, 1)])))
    second = decode(request((list(reversed(UP)), [(1.0, 1)])))
    assert first.series == second.series == [UP_KEY]


def test_same_label_set_in_a_later_request_gets_the_same_key():
    assert decode(request((UP, [(1.0, 1)]))).series == decode(request((UP, [(2.0, 2)]))).series == [UP_KEY]


def test_staleness_markers_are_counted_and_not_stored():
    parsed = decode(request((UP, [(1.0, 1000), (STALE_NAN, 2000), (3.0, 3000)])))
    assert rows(parsed) == [(UP_KEY, 1000, 1.0), (UP_KEY, 3000, 3.0)]
    assert parsed.staleness_markers == 1 and parsed.invalid == []


def test_ordinary_nan_and_infinities_are_counted_not_stored():
    parsed = decode(request((UP, [(math.nan, 1), (math.inf, 2), (-math.inf, 3), (1.5, 4)])))
    assert parsed.values == [1.5] and parsed.non_finite == 3 and parsed.invalid_samples == 0
    assert parsed.staleness_markers == 0


def test_label_with_empty_value_is_absent():
    parsed = decode(request(([("__name__", "up"), ("job", "node"), ("zone", "")], [(1.0, 1)])))
    assert parsed.series == [series_key("up", {"job": "node"})]


def test_series_without_name_is_invalid_and_the_others_are_kept():
    parsed = decode(request(([("job", "node")], [(1.0, 1), (2.0, 2)]), (UP, [(5.0, 5)])))
    assert rows(parsed) == [(UP_KEY, 5, 5.0)]
    assert parsed.invalid == ["timeseries[0]: no __name__ label (2 samples dropped)"]
    assert parsed.invalid_samples == 2


@pytest.mark.parametrize("labels, reason", [
    ([("__name__", "")], "no __name__ label"),
    ([("__name__", "up"), ("job", "a"), ("job", "b")], "duplicate label 'job'"),
    ([("__name__", "up"), ("__name__", "down")], "duplicate label '__name__'"),
    ([("__name__", "up"), ("1job", "a")], "label name '1job' is not allowed"),
    ([("__name__", "up"), ("job name", "a")], "label name 'job name' is not allowed"),
    ([("__name__", "up{x")], "metric name 'up{x' contains '{'"),
    ([("__name__", "up")] + [(f"l{i}", "v") for i in range(MAX_TAGS + 1)],
     f"{MAX_TAGS + 1} labels, more than the limit of {MAX_TAGS}"),
    ([("__name__", "up"), ("big", "x" * MAX_SERIES_KEY_BYTES)], f"over the limit of {MAX_SERIES_KEY_BYTES}"),
])
def test_invalid_label_sets_are_rejected_with_a_reason(labels, reason):
    parsed = decode(request((labels, [(1.0, 1)]), (UP, [(2.0, 2)])))
    assert rows(parsed) == [(UP_KEY, 2, 2.0)]
    assert len(parsed.invalid) == 1 and reason in parsed.invalid[0] and parsed.invalid_samples == 1


@pytest.mark.parametrize("timestamp", [-1, MAX_TIMESTAMP_MS + 1, -(2**63)])
def test_sample_with_timestamp_out_of_range_is_invalid_and_its_neighbours_are_kept(timestamp):
    parsed = decode(request((UP, [(1.0, 0), (2.0, timestamp), (3.0, MAX_TIMESTAMP_MS)])))
    assert rows(parsed) == [(UP_KEY, 0, 1.0), (UP_KEY, MAX_TIMESTAMP_MS, 3.0)]
    assert parsed.invalid == [f"timeseries[0]: timestamp {timestamp} ms is outside 0..{MAX_TIMESTAMP_MS}"]


def test_label_value_that_is_not_utf8_rejects_only_its_series():
    bad_label = length_delimited(1, b"job") + length_delimited(2, b"\xff\xfe")
    bad_series = request((UP, [(1.0, 1)])).timeseries[0].SerializeToString() + length_delimited(1, bad_label)
    body = request((UP, [(2.0, 2)])).SerializeToString() + length_delimited(1, bad_series)
    parsed = decode_write_request(compress(body), LIMIT)
    assert rows(parsed) == [(UP_KEY, 2, 2.0)]
    assert parsed.invalid == ["timeseries[1]: a label is not valid protobuf (or not UTF-8) (1 samples dropped)"]


def test_native_histograms_are_counted_as_invalid():
    message = request((UP, [(1.0, 1)]))
    message.timeseries[0].histograms.append(b"\x08\x01")
    parsed = decode(message)
    assert rows(parsed) == [(UP_KEY, 1, 1.0)]
    assert parsed.invalid_samples == 1 and "native histograms are not supported" in parsed.invalid[0]


def test_metadata_and_exemplars_do_not_break_parsing():
    exemplar = (length_delimited(1, length_delimited(1, b"trace_id") + length_delimited(2, b"abcd"))
                + b"\x11" + struct.pack("<d", 9.0) + b"\x18\x05")  # Exemplar{labels, value=9, timestamp=5}
    series = request((UP, [(1.0, 1)])).timeseries[0].SerializeToString() + length_delimited(3, exemplar)
    metadata = b"\x08\x01" + length_delimited(2, b"up") + length_delimited(4, b"help") + length_delimited(5, b"")
    body = length_delimited(1, series) + length_delimited(3, metadata)  # WriteRequest{timeseries, metadata}
    parsed = decode_write_request(compress(body), LIMIT)
    assert rows(parsed) == [(UP_KEY, 1, 1.0)] and parsed.invalid == []


def test_series_without_samples_is_ignored():
    parsed = decode(request((UP, []), ([("job", "no-name")], [])))
    assert (parsed.series, parsed.invalid) == ([], [])


def test_empty_write_request_decodes_to_nothing():
    parsed = decode_write_request(compress(b""), LIMIT)
    assert (parsed.series, parsed.invalid, parsed.staleness_markers) == ([], [], 0)


def test_reasons_are_capped_but_every_invalid_sample_is_counted():
    message = request(*[([("job", str(i))], [(1.0, 1)]) for i in range(150)])
    parsed = decode(message)
    assert len(parsed.invalid) == 100 and parsed.invalid_samples == 150


@pytest.mark.parametrize("body", [b"", b"\xff\xff\xff\xff\xff\xff", b"\x05abc", b"not snappy at all"])
def test_body_that_is_not_snappy_is_invalid_input(body):
    with pytest.raises(InvalidInput) as caught:
        decode_write_request(body, LIMIT)
    assert caught.value.field == "body"


def test_snappy_body_that_is_not_a_write_request_is_invalid_input():
    with pytest.raises(InvalidInput) as caught:
        decode_write_request(compress(b"\xff\xff\xff\xff"), LIMIT)
    assert caught.value.field == "body" and "prometheus.WriteRequest" in caught.value.message


def test_body_over_the_decompressed_limit_is_refused_before_decompressing():
    # A header announcing 2**31 bytes followed by garbage: the size alone must decide.
    with pytest.raises(LimitExceeded) as caught:
        decode_write_request(b"\x80\x80\x80\x80\x08" + b"garbage", LIMIT)
    assert (caught.value.limit, caught.value.maximum) == ("max_body_bytes", LIMIT)


def test_decompressed_limit_is_inclusive():
    raw = request((UP, [(1.0, 1)])).SerializeToString()
    assert decode_write_request(compress(raw), len(raw)).series == [UP_KEY]
    with pytest.raises(LimitExceeded):
        decode_write_request(compress(raw), len(raw) - 1)


def test_results_stay_correct_after_the_key_cache_fills_up():
    count = remote_write._MAX_CACHED_KEYS + 10
    message = request(*[([("__name__", "m"), ("i", str(i))], [(float(i), 1)]) for i in range(count)])
    parsed = decode(message, 64 << 20)
    assert len(parsed.series) == count and parsed.series[-1] == series_key("m", {"i": str(count - 1)})
    assert len(remote_write._KEYS) <= remote_write._MAX_CACHED_KEYS
