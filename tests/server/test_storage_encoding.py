"""Values read back after a flush are the values written, bit for bit, whichever encodings the blocks chose."""

from __future__ import annotations

import math
import random
import struct

import pyarrow.parquet as pq

JAN_2022 = 1_640_995_200_000
EDGE = [0.0, -0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308,
        float(2**53), float(2**53 - 1), -float(2**53), 0.1, 1 / 3, 1e-300, 123456789.125]


def series_values() -> dict[str, list[float]]:
    """One series per kind of data the encoding chooser tells apart, 600 points each."""
    rnd = random.Random(5)
    counter = [0.0]
    for _ in range(599):
        counter.append(counter[-1] + rnd.randrange(5000))
    return {
        "enc.edge": (EDGE * 47)[:600],
        "enc.noisy": [rnd.gauss(50, 10) for _ in range(600)],
        "enc.few": [rnd.choice([0.0, 1.0, 2.5]) for _ in range(600)],
        "enc.counter": counter,
        "enc.huge": [rnd.uniform(-1, 1) * 10.0 ** rnd.randrange(-300, 300) for _ in range(600)],
    }


def bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def test_values_after_flush_and_restart_are_bit_exact(count_server):
    node = count_server(MEMORY_BUFFER_SIZE=100000, WORKERS=2)
    written = series_values()
    points = [{"series": name, "timestamp": JAN_2022 + i * 15_000, "value": v}
              for name, values in written.items() for i, v in enumerate(values)]
    assert all(math.isfinite(p["value"]) for p in points)
    assert node.post("/insert", json=points).status_code == 201
    assert node.stop() == 0  # SIGTERM flushes every point into blocks
    blocks = (node.data_dir / "time_blocks").glob("*/points-*.parquet")
    assert sum(pq.read_metadata(path).num_rows for path in blocks) == len(points)  # read back from blocks, not WAL
    node = count_server(data_dir=node.data_dir, WORKERS=1)
    for name, values in written.items():
        answer = node.get(f"/query/range/{name}", params={"start": JAN_2022, "end": JAN_2022 + 600 * 15_000}).json()
        assert [row["timestamp"] for row in answer] == [JAN_2022 + i * 15_000 for i in range(600)], name
        assert [bits(row["value"]) for row in answer] == [bits(v) for v in values], name
    node.stop()
