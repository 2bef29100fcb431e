"""Prometheus remote write 1.0 → Count points (pure): a snappy-block-compressed `prometheus.WriteRequest`.

Invariant: the body as a whole (size, snappy, protobuf) is checked before any sample is read, and only that
raises; afterwards a bad series or sample is counted in `invalid` and never stops the rest.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import cramjam
from google.protobuf.message import DecodeError

from countdb.errors import InvalidInput, LimitExceeded
from countdb.ingest import prompb_pb2
from countdb.model import MAX_SERIES_KEY_BYTES, MAX_TAGS, MAX_TIMESTAMP_MS, TAG_KEY_PATTERN, series_key

STALE_NAN_BITS = 0x7FF0000000000002
"""Prometheus's staleness marker: a NaN with this exact bit pattern (prometheus/model/value.StaleNaN)."""

_STALE_NAN_BYTES = struct.pack("<Q", STALE_NAN_BITS)
_MAX_REASONS = 100
_MAX_CACHED_KEYS = 32768
# Encoded labels of a series → its key. NOTE: the same label set arrives every scrape interval, and building
# Label objects plus series_key costs ~5 µs a series; a hit costs a tuple and a dict lookup (~0.7 µs).
_KEYS: dict[tuple[bytes, ...], str] = {}


@dataclass
class ParsedSamples:
    """Parallel lists, one entry per stored sample, plus what was dropped and why."""

    series: list[str] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    staleness_markers: int = 0
    non_finite: int = 0
    """Other NaN and ±Inf samples: valid in Prometheus (a summary with no observations), not storable here."""
    invalid_samples: int = 0
    invalid: list[str] = field(default_factory=list)
    """One reason per rejected series or sample, at most 100; `invalid_samples` has the full count."""

    def reject(self, samples: int, reason: str) -> None:
        self.invalid_samples += samples
        if len(self.invalid) < _MAX_REASONS:
            self.invalid.append(reason)


class _BadSeriesError(Exception):
    """Internal: the current time series is rejected with this message."""


def decode_write_request(body: bytes, max_decompressed_bytes: int) -> ParsedSamples:
    """Decode a remote write 1.0 body into samples with millisecond timestamps.

    Labels become tags and `__name__` the series name; a label with an empty value is absent (as in
    Prometheus). Staleness markers and other NaN and ±Inf values are counted, not stored (Count stores finite
    values only, and Prometheus sends NaN routinely, so they are not an error).
    A series with a bad label set (no name, duplicate or disallowed label, not UTF-8, key too long) or a
    sample outside 0..MAX_TIMESTAMP_MS is dropped and explained in `invalid`. Raises
    LimitExceeded(limit="max_body_bytes") if the snappy header announces more than `max_decompressed_bytes`
    (checked before decompressing), InvalidInput(field="body") for bad snappy or protobuf framing.
    """
    request = _decode_request(body, max_decompressed_bytes)
    out = ParsedSamples()
    for index, timeseries in enumerate(request.timeseries):
        samples = timeseries.samples
        if timeseries.histograms:
            out.reject(len(timeseries.histograms),
                       f"timeseries[{index}]: native histograms are not supported "
                       f"({len(timeseries.histograms)} dropped)")
        if not samples:
            continue
        encoded_labels = tuple(timeseries.labels)
        try:
            key = _KEYS.get(encoded_labels) or _cache_key(encoded_labels)
        except _BadSeriesError as error:
            out.reject(len(samples), f"timeseries[{index}]: {error} ({len(samples)} samples dropped)")
            continue
        _add_samples(out, key, samples, index)
    return out


def _decode_request(body: bytes, max_decompressed_bytes: int) -> prompb_pb2.WriteRequestView:
    raw = decompress_snappy_block(body, max_decompressed_bytes)
    request = prompb_pb2.WriteRequestView()
    try:
        request.ParseFromString(memoryview(raw))
    except DecodeError as error:
        raise InvalidInput(f"body is not a prometheus.WriteRequest: {error}", field="body") from None
    return request


def decompress_snappy_block(body: bytes, max_decompressed_bytes: int) -> bytes:
    """A remote write or read body, un-snappied. LimitExceeded(limit="max_body_bytes") if the header announces
    more than `max_decompressed_bytes` (checked before decompressing); InvalidInput(field="body") if not snappy."""
    try:
        size = cramjam.snappy.decompress_raw_len(body)
    except cramjam.DecompressionError as error:
        raise InvalidInput(f"body is not snappy block format: {error}", field="body") from None
    if size > max_decompressed_bytes:
        raise LimitExceeded(f"decompressed body would be {size} bytes, over the limit of {max_decompressed_bytes}",
                            limit="max_body_bytes", maximum=max_decompressed_bytes)
    try:
        raw = cramjam.snappy.decompress_raw(body)
    except cramjam.DecompressionError as error:
        raise InvalidInput(f"body is not snappy block format: {error}", field="body") from None
    return raw


def _cache_key(encoded_labels: tuple[bytes, ...]) -> str:
    """Decode, validate and remember the key of a label set not seen recently; raises _BadSeriesError."""
    try:
        labels = [(label.name, label.value) for label in map(prompb_pb2.Label.FromString, encoded_labels)]
    except DecodeError:
        raise _BadSeriesError("a label is not valid protobuf (or not UTF-8)") from None
    key = _series_key_of(labels)
    if len(_KEYS) >= _MAX_CACHED_KEYS:
        _KEYS.clear()  # NOTE: crude but bounded; a cold cache only costs one decode per label set
    _KEYS[encoded_labels] = key
    return key


def _series_key_of(labels: list[tuple[str, str]]) -> str:
    """The canonical key for a label set; raises _BadSeriesError saying what is wrong with it."""
    name, tags, seen = None, {}, set()
    for label_name, value in labels:
        if label_name in seen:
            raise _BadSeriesError(f"duplicate label {label_name!r}")
        seen.add(label_name)
        if label_name == "__name__":
            name = value
        elif TAG_KEY_PATTERN.match(label_name) is None:
            raise _BadSeriesError(f"label name {label_name!r} is not allowed "
                                  f"(it must match {TAG_KEY_PATTERN.pattern[:-2]})")
        elif value:
            tags[label_name] = value
    if not name:
        raise _BadSeriesError("no __name__ label")
    if "{" in name:
        raise _BadSeriesError(f"metric name {name!r} contains '{{', which would make the series key ambiguous")
    if len(tags) > MAX_TAGS:
        raise _BadSeriesError(f"{len(tags)} labels, more than the limit of {MAX_TAGS}")
    key = series_key(name, tags)
    size = len(key.encode("utf-8"))
    if size > MAX_SERIES_KEY_BYTES:
        raise _BadSeriesError(f"series key is {size} bytes, over the limit of {MAX_SERIES_KEY_BYTES}")
    return key


def _add_samples(out: ParsedSamples, key: str, samples, index: int) -> None:
    """Append the valid samples of one series; count staleness markers and reject out-of-range timestamps."""
    series, ts_ms, values = out.series, out.ts_ms, out.values
    for sample in samples:
        value, timestamp = sample.value, sample.timestamp
        if value - value != 0.0:  # NaN or ±Inf
            if value != value and struct.pack("<d", value) == _STALE_NAN_BYTES:
                out.staleness_markers += 1
            else:
                out.non_finite += 1
            continue
        if not 0 <= timestamp <= MAX_TIMESTAMP_MS:
            out.reject(1, f"timeseries[{index}]: timestamp {timestamp} ms is outside 0..{MAX_TIMESTAMP_MS}")
            continue
        series.append(key)
        ts_ms.append(timestamp)
        values.append(value)
