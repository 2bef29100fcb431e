"""Hostile and careless connections against a real count-server (issue 14 §4), and what they do to a steady
writer's insert latency.

    python -m bench.hostile                       # every attack, 1000 idle connections, 20 s each
    python -m bench.hostile --seconds 60 --attacks slowloris,slow_body --results-dir bench/results
    python -m bench.hostile --env GUNICORN_CMD_ARGS=--worker-class=gthread   # gunicorn's own gthread worker
    python -m bench.hostile --through-nginx                                   # behind nginx

Attacks (each from its own process, with asyncio, so the measuring process keeps its CPU):
  idle_keepalive  N connections that made one request and then stay open, saying nothing
  idle_fresh      N connections that never send a byte
  slowloris       N connections sending a request's headers one short line every few seconds, never ending
  slow_body       N connections announcing a 1 MB body and sending a byte every few seconds
  non_reader      N clients asking for a large streamed answer (/query/sql) and never reading it

For each, a steady writer inserts 10 points every 20 ms on a keep-alive connection, a prober asks /health
every 100 ms on new connections, and a reader queries the last second of the writer's series every 100 ms:
p50/p99/max of each, and failures, with and without the attack. The
verdict is the issue's: p99 under attack ≤ 3 × p99 without. Numbers on a shared machine are noisy: read the
ratios, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import requests

from bench.server import CountServer, RssSampler, free_port

ATTACKS = ("idle_keepalive", "idle_fresh", "slowloris", "slow_body", "non_reader")
DEFAULT_CONNECTIONS = {"idle_keepalive": 1000, "idle_fresh": 1000, "slowloris": 200, "slow_body": 200,
                       "non_reader": 50}
DRIP_SECONDS = 2.0  # how often slowloris and slow_body send their next byte(s)
BIG_ANSWER_SQL = "SELECT range AS n, range * 2 AS m, 'x' || range AS s FROM range(20000000)"
WRITE_EVERY_SECONDS = 0.02
PROBE_EVERY_SECONDS = 0.1
REQUEST_TIMEOUT_SECONDS = 10.0


# ---- attacks (run in a child process: python -m bench.hostile --attack-only KIND URL N SECONDS) -------------

async def _open(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.wait_for(asyncio.open_connection(host, port), 10)
    except (OSError, asyncio.TimeoutError):
        return None


async def _idle_keepalive(host: str, port: int, until: float) -> None:
    opened = await _open(host, port)
    if opened is None:
        return
    reader, writer = opened
    writer.write(f"GET /ready HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    try:
        await asyncio.wait_for(reader.read(4096), 10)
    except asyncio.TimeoutError:
        pass
    await _hold(writer, until)


async def _idle_fresh(host: str, port: int, until: float) -> None:
    opened = await _open(host, port)
    if opened is not None:
        await _hold(opened[1], until)


async def _drip(host: str, port: int, until: float, first: bytes, piece) -> None:
    """Send `first`, then `piece(n)` every DRIP_SECONDS until `until`: a request that never ends."""
    opened = await _open(host, port)
    if opened is None:
        return
    _, writer = opened
    try:
        writer.write(first)
        n = 0
        while time.monotonic() < until and not writer.is_closing():
            await writer.drain()
            await asyncio.sleep(DRIP_SECONDS)
            writer.write(piece(n))
            n += 1
    except OSError:
        pass
    writer.close()


async def _slowloris(host: str, port: int, until: float) -> None:
    await _drip(host, port, until, f"POST /insert HTTP/1.1\r\nHost: {host}\r\n".encode(),
                lambda n: f"X-Drip-{n}: {n}\r\n".encode())


async def _slow_body(host: str, port: int, until: float) -> None:
    await _drip(host, port, until, f"POST /insert HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                                   f"Content-Length: 1000000\r\n\r\n[".encode(), lambda n: b" ")


async def _non_reader(host: str, port: int, until: float) -> None:
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up at once, as a stalled reader does
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), 10)
    except (OSError, asyncio.TimeoutError):
        return
    body = json.dumps({"sql": BIG_ANSWER_SQL}).encode()
    request = (f"POST /query/sql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
               f"Accept: application/x-ndjson\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    try:
        await asyncio.get_running_loop().sock_sendall(sock, request)
        await asyncio.sleep(max(0.0, until - time.monotonic()))  # and never read a byte
    except OSError:
        pass
    sock.close()


async def _hold(writer: asyncio.StreamWriter, until: float) -> None:
    await asyncio.sleep(max(0.0, until - time.monotonic()))
    writer.close()


async def _attack(kind: str, host: str, port: int, connections: int, seconds: float) -> None:
    until = time.monotonic() + seconds
    attack = {"idle_keepalive": _idle_keepalive, "idle_fresh": _idle_fresh, "slowloris": _slowloris,
              "slow_body": _slow_body, "non_reader": _non_reader}[kind]
    tasks = []
    for _ in range(connections):
        tasks.append(asyncio.create_task(attack(host, port, until)))
        await asyncio.sleep(0.002)  # 500 connections a second: a flood, not a SYN storm
    await asyncio.gather(*tasks, return_exceptions=True)


class AttackProcess:
    """`kind` from a child process for `seconds`; stop() ends it early."""

    def __init__(self, kind: str, url: str, connections: int, seconds: float):
        self.process = subprocess.Popen([sys.executable, "-m", "bench.hostile", "--attack-only", kind, url,
                                         str(connections), str(seconds)],
                                        cwd=Path(__file__).resolve().parents[1], start_new_session=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


# ---- measuring ------------------------------------------------------------------------------------------------

@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)
    failures: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        ordered = sorted(self.seconds)
        if not ordered:
            return {"count": 0, "failures": self.failures, "statuses": self.statuses}
        return {"count": len(ordered), "failures": self.failures, "statuses": self.statuses,
                "p50_ms": round(1000 * statistics.median(ordered), 2),
                "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
                "max_ms": round(1000 * ordered[-1], 2)}


class SteadyLoad:
    """A writer (10 points every 20 ms, keep-alive) and a /health prober (every 100 ms, new connections)."""

    def __init__(self, url: str, series: str = "steady", headers: dict | None = None):
        self.url, self.series, self.headers = url, series, headers or {}
        self.writes, self.health, self.queries = Latencies(), Latencies(), Latencies()
        self.acked: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write, daemon=True),
                         threading.Thread(target=self._probe, daemon=True),
                         threading.Thread(target=self._query, daemon=True)]
        self._ts = 1_700_000_000_000

    def __enter__(self) -> "SteadyLoad":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _write(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            points = [{"series": self.series, "timestamp": self._ts + i, "value": float(self._ts + i)}
                      for i in range(10)]
            started = time.perf_counter()
            try:
                response = session.post(self.url + "/insert", json=points, headers=self.headers,
                                        timeout=REQUEST_TIMEOUT_SECONDS)
                self.writes.seconds.append(time.perf_counter() - started)
                _count(self.writes, str(response.status_code))
                if response.status_code == 201:
                    self.acked.extend(p["timestamp"] for p in points)
            except requests.RequestException as error:
                self.writes.failures += 1
                self.writes.seconds.append(time.perf_counter() - started)
                _count(self.writes, type(error).__name__)
                session = requests.Session()
            self._ts += 10
            self._stop.wait(WRITE_EVERY_SECONDS)

    def _probe(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                response = requests.get(self.url + "/health", timeout=REQUEST_TIMEOUT_SECONDS)
                _count(self.health, str(response.status_code))
            except requests.RequestException as error:
                self.health.failures += 1
                _count(self.health, type(error).__name__)
            self.health.seconds.append(time.perf_counter() - started)
            self._stop.wait(PROBE_EVERY_SECONDS)


    def _query(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                response = session.get(f"{self.url}/query/range/{self.series}", headers=self.headers,
                                       params={"start": self._ts - 500, "end": self._ts},
                                       timeout=REQUEST_TIMEOUT_SECONDS)
                _count(self.queries, str(response.status_code))
            except requests.RequestException as error:
                self.queries.failures += 1
                _count(self.queries, type(error).__name__)
                session = requests.Session()
            self.queries.seconds.append(time.perf_counter() - started)
            self._stop.wait(PROBE_EVERY_SECONDS)


def _count(latencies: Latencies, key: str) -> None:
    latencies.statuses[key] = latencies.statuses.get(key, 0) + 1


def measure(url: str, attack: str | None, connections: int, seconds: float, warmup_seconds: float = 2.0) -> dict:
    """The steady load for `seconds`, under `attack` (None: the baseline) started `warmup_seconds` before."""
    attacker = AttackProcess(attack, url, connections, seconds + warmup_seconds + 5) if attack else None
    try:
        time.sleep(warmup_seconds if attacker else 0)
        with SteadyLoad(url) as load:
            time.sleep(seconds)
    finally:
        if attacker:
            attacker.stop()
    return {"attack": attack or "none", "connections": connections if attack else 0,
            "writes": load.writes.summary(), "health": load.health.summary(), "queries": load.queries.summary()}


def ndjson_body(megabytes: float, series: str) -> bytes:
    """About `megabytes` of NDJSON points for one series."""
    line_bytes = len(json.dumps({"series": series, "timestamp": 1_700_000_000_000, "value": 0.5})) + 1
    count = int(megabytes * 2**20 / line_bytes)
    return "".join(json.dumps({"series": series, "timestamp": 1_700_000_000_000 + i, "value": 0.5}) + "\n"
                   for i in range(count)).encode()


def overload(url: str, clients: int, body_mb: float, headers: dict | None = None) -> dict:
    """`clients` connections each POST one `body_mb` NDJSON batch at the same moment; the answers' statuses
    (201, or 503 with Retry-After when flushes can't keep up, or 413 past MAX_BODY_BYTES) and seconds."""
    bodies = [ndjson_body(body_mb, f"overload.{n}") for n in range(clients)]
    statuses: dict[str, int] = {}
    seconds: list[float] = []
    start = threading.Barrier(clients)

    def send(body: bytes) -> None:
        start.wait()
        began = time.perf_counter()
        try:
            response = requests.post(url + "/insert", data=body, timeout=120, headers={
                **(headers or {}), "Content-Type": "application/x-ndjson"})
            key = str(response.status_code) + ("+Retry-After" if "Retry-After" in response.headers else "")
        except requests.RequestException as error:
            key = type(error).__name__
        seconds.append(time.perf_counter() - began)
        statuses[key] = statuses.get(key, 0) + 1

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"clients": clients, "body_mb": body_mb, "statuses": statuses,
            "slowest_seconds": round(max(seconds), 2) if seconds else None}


# The directives of nginx/nginx.conf that decide how nginx treats slow and idle clients, in front of one node
# over plain HTTP (no TLS, rate limits or routing: those don't change how connections are held).
NGINX_CONF = """
worker_processes 1;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {folder}/client_body; proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi; uwsgi_temp_path {folder}/uwsgi; scgi_temp_path {folder}/scgi;
    access_log off;
    keepalive_timeout 65s;
    client_header_timeout 10s;
    client_body_timeout 30s;
    client_max_body_size 16m;
    client_body_buffer_size 1m;
    upstream count {{ server {backend}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://count;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


class NginxFront:
    """nginx on a free loopback port in front of `backend` (host:port); `url` is where clients go."""

    def __init__(self, backend: str, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = folder / "nginx.conf"
        conf.write_text(NGINX_CONF.format(folder=folder, backend=backend, port=self.port))
        directives = f"daemon off; pid {folder / 'nginx.pid'}; error_log {folder / 'error.log'} warn;"
        if os.geteuid() == 0:
            directives += " user root;"  # as root, workers would run as `nobody`, who can't enter a 0700 temp dir
        self.process = subprocess.Popen(["nginx", "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log"),
                                         "-g", directives], start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start:\n{(folder / 'error.log').read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)


def run(attacks: list[str], seconds: float, connections: dict[str, int], env: dict, work_dir: Path,
        overload_clients: int = 0, overload_mb: float = 10.0, through_nginx: bool = False) -> dict:
    """The baseline and each attack against one node (each attack's largest worker RSS beside it: RSS that a
    worker took stays with it, so later rows include earlier ones), then the overload against a fresh node, so
    its RSS is its own."""
    results = []
    with _node(env, work_dir / "attacks", through_nginx) as (server, url):
        _seed_for_non_reader(url)
        results.append(measure(url, None, 0, seconds))
        for attack in attacks:
            with RssSampler(server) as rss:
                results.append(measure(url, attack, connections[attack], seconds))
            results[-1]["worker_rss_mb"] = round(max(rss.resident_max_mb.values(), default=0), 1)
            time.sleep(3)  # the server closes what the attack left
    overloaded = None
    if overload_clients:
        with _node(env, work_dir / "overload", through_nginx) as (server, url), RssSampler(server) as rss:
            overloaded = overload(url, overload_clients, overload_mb)
        overloaded["worker_rss_mb"] = round(max(rss.resident_max_mb.values(), default=0), 1)
    baseline = results[0]["writes"]["p99_ms"]
    for result in results[1:]:
        p99 = result["writes"].get("p99_ms")
        result["p99_ratio"] = round(p99 / baseline, 2) if p99 and baseline else None
        result["meets_3x"] = bool(result["p99_ratio"] is not None and result["p99_ratio"] <= 3
                                  and result["writes"]["failures"] == 0)
    return {"env": env, "through_nginx": through_nginx, "seconds": seconds, "results": results,
            "overload": overloaded}


@contextmanager
def _node(env: dict, work_dir: Path, through_nginx: bool) -> Iterator[tuple[CountServer, str]]:
    """A fresh count-server (and nginx in front of it if asked): the server and the URL clients use."""
    server = CountServer(work_dir / "data", work_dir / "server.log", env).start()
    front = None
    try:
        front = NginxFront(server.url.removeprefix("http://"), work_dir / "nginx") if through_nginx else None
        yield server, front.url if front else server.url
    finally:
        if front:
            front.stop()
        server.stop()


def _seed_for_non_reader(url: str) -> None:
    """Nothing to store: the big answer comes from DuckDB's range(); this only checks the sandbox allows it."""
    answer = requests.post(url + "/query/sql", json={"sql": BIG_ANSWER_SQL.replace("20000000", "3")}, timeout=30)
    answer.raise_for_status()


def markdown(report: dict) -> str:
    lines = [f"Settings: {json.dumps(report['env'])}{'; through nginx' if report['through_nginx'] else ''}; "
             f"{report['seconds']:.0f} s per row; shared 2-core machine.", "",
             "| attack | connections | insert p50 ms | insert p99 ms | p99 ÷ baseline | insert failures | "
             "/health p99 ms | /health failures | query p99 ms | query failures | largest worker RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        w, h, q = r["writes"], r["health"], r["queries"]
        lines.append(f"| {r['attack']} | {r['connections']} | {w.get('p50_ms')} | {w.get('p99_ms')} | "
                     f"{r.get('p99_ratio', '—')} | {w['failures']} | {h.get('p99_ms')} | {h['failures']} | "
                     f"{q.get('p99_ms')} | {q['failures']} | {r.get('worker_rss_mb', '—')} |")
    if report.get("overload"):
        o = report["overload"]
        lines.append(f"\nOverload, on a fresh node: {o['clients']} clients × {o['body_mb']} MB NDJSON at once: "
                     f"answers {o['statuses']}, slowest {o['slowest_seconds']} s, "
                     f"largest worker RSS {o['worker_rss_mb']} MB")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attack-only", nargs=4, metavar=("KIND", "URL", "CONNECTIONS", "SECONDS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement (default 20)")
    parser.add_argument("--connections", type=int, help="for every attack (default: 1000 idle, 200 slow, 50 "
                                                        "non-reading)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a server setting, e.g. --env THREADS=8 (repeatable)")
    parser.add_argument("--overload-clients", type=int, default=50,
                        help="clients sending one big batch at once after the attacks (0: skip; default 50)")
    parser.add_argument("--overload-mb", type=float, default=10.0, help="size of each such batch (default 10)")
    parser.add_argument("--through-nginx", action="store_true",
                        help="send everything through nginx (nginx/nginx.conf's connection settings)")
    parser.add_argument("--results-dir", type=Path, help="write hostile-<time>.json and .md there")
    args = parser.parse_args(argv)
    if args.attack_only:
        kind, url, connections, seconds = args.attack_only
        host, port = url.removeprefix("http://").rsplit(":", 1)
        asyncio.run(_attack(kind, host, int(port), int(connections), float(seconds)))
        return 0
    attacks = [a for a in args.attacks.split(",") if a]
    unknown = set(attacks) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attacks {sorted(unknown)}; choose from {', '.join(ATTACKS)}")
    connections = {a: args.connections or DEFAULT_CONNECTIONS[a] for a in ATTACKS}
    env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="count-hostile-") as work:
        report = run(attacks, args.seconds, connections, env, Path(work), args.overload_clients, args.overload_mb,
                     args.through_nginx)
    text = markdown(report)
    print(text)
    if args.results_dir:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        stem = args.results_dir / f"hostile-{time.strftime('%Y%m%d-%H%M%S')}"
        stem.with_suffix(".json").write_text(json.dumps(report, indent=1))
        stem.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
