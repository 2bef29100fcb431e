"""Building Prometheus remote-write bodies for tests, with the same generated protobuf module Count decodes."""

from __future__ import annotations

import cramjam

from countdb.ingest import prompb_pb2


def compress(raw: bytes) -> bytes:
    """Snappy *block* format, as remote write sends it."""
    return bytes(cramjam.snappy.compress_raw(raw))


def request(*series: tuple[list[tuple[str, str]], list[tuple[float, int]]]) -> prompb_pb2.WriteRequest:
    """A WriteRequest of (labels, [(value, timestamp ms), …]) per series."""
    message = prompb_pb2.WriteRequest()
    for labels, samples in series:
        timeseries = message.timeseries.add()
        for name, value in labels:
            timeseries.labels.add(name=name, value=value)
        for value, timestamp in samples:
            timeseries.samples.add(value=value, timestamp=timestamp)
    return message
