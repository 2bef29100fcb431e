"""Issue 15 §2, remote read: a real Prometheus (Debian's binary) configured with `remote_read` pointing at Count
answers its own /api/v1/query and /api/v1/query_range over samples only Count holds, exactly as Count's data
implies; and the STREAMED_XOR_CHUNKS answer, decoded independently, carries the same samples and labels."""

from __future__ import annotations

import io
import struct
import time

import cramjam
import google_crc32c
import requests

from countdb.ingest import prompb_pb2
from support.prometheus import running_prometheus
from support.remote_write import compress, request
from support.xor_chunks import decode_xor_chunk

STEP_MS = 15_000
SAMPLES = 200  # 50 minutes at 15 s, so each series spans two XOR chunks
LOOKBACK_MS = 300_000
BASE_MS = (int(time.time() * 1000) - 2 * 3600_000) // 60_000 * 60_000  # two hours ago, whole minute
SERIES = {  # labels → value at sample i; the empty `zone` label is dropped by remote write, as in Prometheus
    (("__name__", "rr_requests_total"), ("host", "a"), ("job", "api")): lambda i: 10.0 * i,
    (("__name__", "rr_requests_total"), ("host", "b"), ("job", "api"), ("zone", "")): lambda i: 0.5 * i * i,
    (("__name__", "rr_requests_total"), ("host", "c"), ("job", "batch")): lambda i: -1.25 + i % 7,
    (("__name__", "rr_other"), ("host", "a")): lambda i: 1.0,
}


def samples_of(value_at) -> list[tuple[int, float]]:
    return [(BASE_MS + i * STEP_MS, value_at(i)) for i in range(SAMPLES) if i % 50 != 49]  # a few gaps


def stored_labels(labels) -> dict[str, str]:
    return {name: value for name, value in labels if value}


def write_all(node) -> None:
    body = request(*[(list(labels), [(v, t) for t, v in samples_of(f)]) for labels, f in SERIES.items()])
    response = requests.post(node.url + "/api/v1/write", data=compress(body.SerializeToString()), timeout=10,
                             headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"})
    assert response.status_code == 204, response.text


def test_prometheus_answers_query_range_over_samples_only_count_holds(count_server, tmp_path):
    node = count_server()
    write_all(node)

    def config_for(port: int) -> dict:
        return {"global": {"scrape_interval": "1h"},
                "remote_read": [{"url": node.url + "/api/v1/read", "read_recent": True}]}
    with running_prometheus(tmp_path / "prometheus", config_for) as prometheus:
        # raw samples through a range vector: exactly what was written, labels as stored
        at_ms = BASE_MS + SAMPLES * STEP_MS
        raw = prometheus.api("query", query='rr_requests_total{job=~"ap.*"}[1h]', time=f"{at_ms / 1000:.3f}")
        got = {tuple(sorted(entry["metric"].items())): [(round(float(t) * 1000), float(v)) for t, v in entry["values"]]
               for entry in raw["result"]}
        expected = {tuple(sorted(stored_labels(labels).items())): [s for s in samples_of(f) if s[0] > at_ms - 3600_000]
                    for labels, f in SERIES.items() if dict(labels).get("job") == "api"}
        assert got == expected

        # query_range at a step that never lands on a sample or a lookback boundary
        start_ms, end_ms, step_ms = BASE_MS + 7_000, BASE_MS + SAMPLES * STEP_MS + 400_000, 30_000
        answer = prometheus.api("query_range", query='rr_requests_total{host!="b",job!~"x.*"}',
                                start=start_ms / 1000, end=end_ms / 1000, step=step_ms / 1000)
        got = {tuple(sorted(entry["metric"].items())): [(round(float(t) * 1000), float(v)) for t, v in entry["values"]]
               for entry in answer["result"]}
        expected = {}
        for labels, f in SERIES.items():
            if dict(labels)["__name__"] != "rr_requests_total" or dict(labels)["host"] == "b":
                continue
            samples, points = samples_of(f), []
            for t in range(start_ms, end_ms + 1, step_ms):
                recent = [v for ts, v in samples if t - LOOKBACK_MS < ts <= t]
                if recent:
                    points.append((t, recent[-1]))
            expected[tuple(sorted(stored_labels(labels).items()))] = points
        assert got == expected


def read_request(*queries: prompb_pb2.Query, chunks: bool) -> bytes:
    message = prompb_pb2.ReadRequest(queries=list(queries))
    if chunks:
        message.accepted_response_types.append(prompb_pb2.ReadRequest.STREAMED_XOR_CHUNKS)
    return compress(message.SerializeToString())


def query(start_ms: int, end_ms: int, *matchers: tuple[int, str, str], hints: tuple[int, int] | None = None):
    out = prompb_pb2.Query(start_timestamp_ms=start_ms, end_timestamp_ms=end_ms,
                           matchers=[prompb_pb2.LabelMatcher(type=t, name=n, value=v) for t, n, v in matchers])
    if hints:
        out.hints.start_ms, out.hints.end_ms = hints
    return out


def read_frames(data: bytes) -> list[prompb_pb2.ChunkedReadResponse]:
    stream, frames = io.BytesIO(data), []
    while stream.tell() < len(data):
        size, shift = 0, 0
        while True:
            byte = stream.read(1)[0]
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        crc = struct.unpack(">I", stream.read(4))[0]
        message = stream.read(size)
        assert google_crc32c.value(message) == crc
        frames.append(prompb_pb2.ChunkedReadResponse.FromString(message))
    return frames


def test_streamed_chunks_carry_the_samples_and_honour_matchers_and_hints(count_server):
    node = count_server()
    write_all(node)
    eq, neq, nre = prompb_pb2.LabelMatcher.EQ, prompb_pb2.LabelMatcher.NEQ, prompb_pb2.LabelMatcher.NRE
    end_ms = BASE_MS + SAMPLES * STEP_MS
    hinted = (BASE_MS + 100 * STEP_MS, BASE_MS + 150 * STEP_MS)
    body = read_request(query(0, end_ms, (eq, "__name__", "rr_requests_total"), (nre, "job", "bat.*")),
                        query(0, end_ms, (neq, "host", "a"), (eq, "zone", ""), hints=hinted), chunks=True)
    response = requests.post(node.url + "/api/v1/read", data=body, timeout=10,
                             headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/x-streamed-protobuf")
    got: dict[tuple[int, tuple], list] = {}
    for frame in read_frames(response.content):
        for series in frame.chunked_series:
            labels = tuple((label.name, label.value) for label in series.labels)
            for chunk in series.chunks:
                samples = decode_xor_chunk(chunk.data)
                assert (chunk.min_time_ms, chunk.max_time_ms) == (samples[0][0], samples[-1][0])
                got.setdefault((frame.query_index, labels), []).extend(samples)
    expected = {}
    for labels, f in SERIES.items():
        stored = tuple(sorted(stored_labels(labels).items()))
        if dict(labels)["__name__"] == "rr_requests_total" and dict(labels)["job"] != "batch":
            expected[(0, stored)] = samples_of(f)
        if dict(labels)["host"] != "a":
            expected[(1, stored)] = [s for s in samples_of(f) if hinted[0] <= s[0] <= hinted[1]]
    assert got == expected

    samples_body = read_request(query(0, end_ms, (eq, "__name__", "rr_other")), chunks=False)
    response = requests.post(node.url + "/api/v1/read", data=samples_body, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Encoding"] == "snappy"
    result = prompb_pb2.ReadResponse.FromString(bytes(cramjam.snappy.decompress_raw(response.content))).results
    assert [[(label.name, label.value) for label in ts.labels] for ts in result[0].timeseries] == [
        [("__name__", "rr_other"), ("host", "a")]]
    assert [(s.timestamp, s.value) for s in result[0].timeseries[0].samples] == samples_of(lambda i: 1.0)


def test_a_body_that_is_not_a_read_request_is_refused(count_server):
    node = count_server()
    response = requests.post(node.url + "/api/v1/read", data=compress(b"\xff\xff\xff"), timeout=10)
    assert response.status_code == 400 and "ReadRequest" in response.json()["error"]
