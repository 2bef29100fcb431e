"""Record real node-exporter scrapes into bench/data/node_exporter.parquet, the "real exporter data" set.

Why shipped, not scraped per run: a recording makes bytes/point comparable between commits and machines, and
needs no exporter in CI. This module is how the file was made, so anyone can re-record it:

    prometheus-node-exporter --web.listen-address=127.0.0.1:9109 &
    python -m bench.record_exporter scrape --url http://127.0.0.1:9109/metrics --out /tmp/scrapes.txt --minutes 120
    python -m bench.record_exporter convert /tmp/scrapes.txt bench/data/node_exporter.parquet
"""

from __future__ import annotations

import argparse
import re
import time
import urllib.request
from pathlib import Path

SCRAPE_MARK = "#@SCRAPE "
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def scrape_loop(url: str, out: Path, minutes: float, interval_seconds: float) -> None:
    """Append one scrape every interval (aligned like Prometheus: fixed slots, real start times in ms)."""
    deadline = time.time() + minutes * 60
    next_slot = time.time()
    with out.open("a", encoding="utf-8") as handle:
        while time.time() < deadline:
            time.sleep(max(0.0, next_slot - time.time()))
            started_ms = int(time.time() * 1000)
            try:
                body = urllib.request.urlopen(url, timeout=10).read().decode("utf-8")
            except OSError as error:
                print(f"scrape failed: {error}", flush=True)
            else:
                handle.write(f"{SCRAPE_MARK}{started_ms}\n{body}")
                handle.flush()
            next_slot += interval_seconds


def parse_scrapes(text: str):
    """Yield (series_key, ts_ms, value) from the recorded file; NaN/Inf samples are kept as floats."""
    from countdb.model import series_key

    ts_ms = None
    for line in text.splitlines():
        if line.startswith(SCRAPE_MARK):
            ts_ms = int(line[len(SCRAPE_MARK):])
            continue
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None or ts_ms is None:
            continue
        name, labels, value = match.groups()
        tags = {key: val.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                for key, val in _LABEL.findall(labels[1:-1])} if labels else {}
        yield series_key(name, tags), ts_ms, float(value)


def convert(scrapes: Path, out: Path) -> None:
    """Write series (string), ts (int64 ms), value (float64), sorted by series then ts, zstd level 19."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = list(parse_scrapes(scrapes.read_text(encoding="utf-8")))
    series, ts, value = zip(*rows)
    table = pa.table({"series": pa.array(series, pa.string()), "ts": pa.array(ts, pa.int64()),
                      "value": pa.array(value, pa.float64())})
    table = table.sort_by([("series", "ascending"), ("ts", "ascending")])
    pq.write_table(table, out, compression="zstd", compression_level=19)
    print(f"{table.num_rows} points, {len(set(series))} series, {out.stat().st_size} bytes")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    scrape = sub.add_parser("scrape")
    scrape.add_argument("--url", default="http://127.0.0.1:9109/metrics")
    scrape.add_argument("--out", type=Path, required=True)
    scrape.add_argument("--minutes", type=float, default=120)
    scrape.add_argument("--interval-seconds", type=float, default=15)
    conv = sub.add_parser("convert")
    conv.add_argument("scrapes", type=Path)
    conv.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "scrape":
        scrape_loop(args.url, args.out, args.minutes, args.interval_seconds)
    else:
        convert(args.scrapes, args.out)


if __name__ == "__main__":
    main()
