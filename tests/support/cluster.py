"""A cluster of real count-server processes on loopback: each node its own gunicorn, DATA_DIR and fixed port
(CLUSTER_NODES must name them before they start), seconds-scale heartbeats, and a signed client for the
internal routes."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import orjson
import pyarrow as pa
import requests

from countdb.cluster.auth import sign
from countdb.cluster.layout import ring_of
from countdb.cluster.members import RELOAD_SECONDS
from countdb.cluster.wire import decode_stream

SECRET = "test-cluster-secret-0123456789abcdef"
FAST_CLUSTER_ENV = {"HEARTBEAT_INTERVAL": "0.5", "FAILURE_TIMEOUT": "3", "FORWARD_TIMEOUT_SECONDS": "2",
                    "ANTI_ENTROPY_INTERVAL_SECONDS": "2", "CLUSTER_SECRET": SECRET, "WORKERS": "2",
                    "THREADS": "4"}


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def stop_all(servers: list) -> None:
    """Stop every CountServer of `servers` still running, all at once: one after the other cost ~3 s a server."""
    running = [server for server in servers if server.proc is not None and server.proc.poll() is None]
    with ThreadPoolExecutor(max(1, len(running))) as pool:
        list(pool.map(lambda server: server.stop(), running))


def every_worker_reloads_its_view() -> None:
    """Wait until every worker of every node has reread its agent's view of the members (each does so within
    RELOAD_SECONDS): what one worker reported (/health, /cluster/status) then holds for the node's other workers."""
    time.sleep(2 * RELOAD_SECONDS)


@dataclass
class Cluster:
    nodes: list  # CountServer, in CLUSTER_NODES order
    addresses: list[str]
    flight_ports: list[int]

    def stop(self) -> None:
        stop_all(self.nodes)

    def kill(self) -> None:
        """kill -9 every node still running: a test's teardown. A graceful stop of nodes that all stop at once
        waits ~3 s for their calls to each other; tests of shutdown stop their nodes themselves."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.kill_all()

    def url(self, index: int) -> str:
        return f"http://{self.addresses[index]}"

    def signed(self, index: int, method: str, path: str, body: bytes = b"", signer: int = 0,
               secret: str = SECRET) -> requests.Response:
        headers = sign(secret, method, path, body, signer)
        return requests.request(method, self.url(index) + path, data=body, headers=headers, timeout=30)

    def wait_until(self, predicate, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        last = None
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except (requests.RequestException, ValueError, KeyError) as error:
                last = error
            time.sleep(0.2)
        raise AssertionError(f"not within {seconds} s: {what} (last error: {last})")

    def members_up(self, index: int) -> int:
        return requests.get(self.url(index) + "/health", timeout=5).json()["cluster_size"]

    def wait_formed(self, seconds: float = 60, up: list[int] | None = None) -> None:
        up = list(range(len(self.nodes))) if up is None else up
        self.wait_until(lambda: all(self.members_up(i) == len(up) for i in up), seconds,
                        f"nodes {[i + 1 for i in up]} see each other")
        # NOTE: /health answered from one worker of each node; the other may still hold an older view. A peer
        # that looks down there is read again at once (cluster/members.py), but not one that stopped and still
        # looks up, nor whether a peer has caught up: it may route a read or a forward by those.
        every_worker_reloads_its_view()


WRITTEN_START_MS = 1_700_000_000_000
WRITTEN_SERIES = 12


class Writers:
    """Threads that write batches of new points through the given base URLs until stopped (one thread per URL),
    recording which points were acknowledged (201), which were attempted at all, and every other outcome."""

    def __init__(self, urls: list[str], verify: bool | str = True, pause_seconds: float = 0.01,
                 series_prefix: str = "w"):
        self.urls, self.verify, self.pause_seconds, self.prefix = urls, verify, pause_seconds, series_prefix
        self.series = [f"{series_prefix}{s}" for s in range(WRITTEN_SERIES)]
        self.acknowledged: set[tuple[str, int]] = set()
        self.attempted: set[tuple[str, int]] = set()
        self.failures: list[str] = []  # "HTTP 503 (Retry-After 1): …", or the client's exception
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ts = itertools.count()
        self._threads = [threading.Thread(target=self._run, args=(url,), daemon=True) for url in urls]

    def __enter__(self) -> "Writers":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def refused_only_with_retry_after(self) -> bool:
        """Every write that was not acknowledged got 503 with Retry-After (what a client may see, and retry)."""
        return all(failure.startswith("HTTP 503 (Retry-After") for failure in self.failures)

    def _run(self, url: str) -> None:
        session = requests.Session()
        for _ in range(10_000):  # bounded: ends by itself even if nobody stops it
            if self._stop.is_set():
                return
            offset = next(self._ts)
            batch = [(series, WRITTEN_START_MS + offset) for series in self.series]
            with self._lock:
                self.attempted.update(batch)
            body = [{"series": series, "timestamp": ts, "value": float(ts % 1000)} for series, ts in batch]
            try:
                response = session.post(url + "/insert", json=body, timeout=30, verify=self.verify)
                failure = None if response.status_code == 201 else (
                    f"HTTP {response.status_code} (Retry-After {response.headers.get('Retry-After')}): {response.text}")
            except requests.RequestException as error:
                failure = f"{type(error).__name__}: {error}"
            with self._lock:
                if failure is None:
                    self.acknowledged.update(batch)
                else:
                    self.failures.append(failure)
            time.sleep(self.pause_seconds)


KNOWN = [{"series": "known", "timestamp": 1_600_000_000_000 + i, "value": float(i)} for i in range(300)]


class Readers:
    """A thread that asks for the known series through the proxy until stopped, recording every answer that is
    not exactly the known points (a failed query or a wrong answer)."""

    def __init__(self, url: str, verify: bool | str = True):
        self.url, self.verify = url, verify
        self.answers = 0
        self.wrong: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Readers":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        session, expected = requests.Session(), [(p["timestamp"], p["value"]) for p in KNOWN]
        params = {"start": KNOWN[0]["timestamp"], "end": KNOWN[-1]["timestamp"]}
        for _ in range(10_000):  # bounded: ends by itself even if nobody stops it
            if self._stop.wait(0.05):
                return
            try:
                response = session.get(self.url + "/query/range/known", params=params, timeout=30, verify=self.verify)
                got = [(row["timestamp"], row["value"]) for row in response.json()] if response.ok else None
                if got != expected:
                    self.wrong.append(f"HTTP {response.status_code}: {response.text[:200]}")
            except (requests.RequestException, ValueError) as error:
                self.wrong.append(f"{type(error).__name__}: {error}")
            self.answers += 1


def refuses_writes_as_a_minority(url: str, series: str, attempts: int = 4) -> bool:
    """Whether `attempts` writes in a row to the node at `url`, each on a new connection (so on any of its
    workers), are refused 503 with Retry-After as a minority. NOTE: each worker counts its peers down on its own
    (from a request that failed, or from the agent's view once FAILURE_TIMEOUT has passed); until then a write
    there waits for the peers and is refused on its quorum instead."""
    for _ in range(attempts):
        answer = requests.post(url + "/insert", json={"series": series, "timestamp": 1_700_000_000_000, "value": 1.0},
                               timeout=15)
        if answer.status_code != 503 or not answer.headers.get("Retry-After") or \
                "minority" not in answer.json().get("error", ""):
            return False
    return True


def visible(cluster, index: int, prefix: str = "w") -> tuple[set[tuple[str, int]], int]:
    """The (series, ts) points of the series named `prefix`… as node `index` answers SQL, and how many rows it
    answered."""
    response = requests.post(cluster.url(index) + "/query/sql", headers={"Content-Type": "text/plain"}, timeout=60,
                             data=f"SELECT series, epoch_ms(ts) FROM points WHERE name LIKE '{prefix}%'")
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    return {(series, ts) for series, ts in rows}, len(rows)


def assert_every_node_holds_exactly(cluster, writers: Writers, nodes: list[int], seconds: float = 60) -> None:
    """Every node answers every acknowledged point, each once, and nothing that was never attempted."""
    def converged() -> bool:
        return all(writers.acknowledged <= visible(cluster, index, writers.prefix)[0] for index in nodes)

    def missing() -> str:
        lacking = {index + 1: sorted(writers.acknowledged - visible(cluster, index, writers.prefix)[0]) for index in nodes}
        return "; ".join(f"node {node} lacks {len(points)}, e.g. {points[:3]}" for node, points in lacking.items())

    try:
        cluster.wait_until(converged, seconds, "every node answers every acknowledged point")
    except AssertionError as error:
        raise AssertionError(f"{error}: {missing()}") from None
    for index in nodes:
        points, rows = visible(cluster, index, writers.prefix)
        assert rows == len(points), f"node {index + 1} answered a point twice"
        assert points <= writers.attempted, f"node {index + 1} answered points nobody wrote"
        assert writers.acknowledged <= points


def ring_state(cluster: Cluster, index: int) -> dict:
    return cluster.signed(index, "GET", "/cluster/status").json()["ring"]


def members_seen_by(cluster: Cluster, index: int) -> dict[int, dict]:
    """Node `index`'s view of the members, by 0-based node number, from its GET /cluster/status."""
    status = cluster.signed(index, "GET", "/cluster/status")
    assert status.status_code == 200, status.text
    return {member["node"] - 1: member for member in status.json()["members"]}


def settled_on(cluster: Cluster, nodes: list[int], addresses: list[str]) -> bool:
    return all(ring_state(cluster, i)["phase"] == "settled" and ring_state(cluster, i)["target"] == addresses
               for i in nodes)


def stored_here(cluster: Cluster, index: int, series: str) -> set[int]:
    """The timestamps `series` has on node `index` itself (its own copy, not the cluster's answer)."""
    answer = cluster.signed(index, "POST", "/cluster/points", orjson.dumps({"series": series}))
    assert answer.status_code == 200, answer.text
    table: pa.Table = decode_stream(answer.content)
    return set(table["ts"].to_pylist())


def assert_each_series_lives_on_its_owners_only(cluster: Cluster, writers: Writers, nodes: list[int],
                                                addresses: list[str]) -> None:
    ring = ring_of(tuple(cluster.addresses), tuple(addresses))
    pairs = [(series, index) for series in writers.series for index in nodes]
    with ThreadPoolExecutor(8) as pool:  # NOTE: dozens of requests, each a query on a loaded machine
        stored = dict(zip(pairs, pool.map(lambda pair: stored_here(cluster, pair[1], pair[0]), pairs)))
    for series in writers.series:
        written = {ts for name, ts in writers.acknowledged if name == series}
        owners = ring.owners(series, 2)
        for index in nodes:
            here = stored[(series, index)]
            if index in owners:
                assert written <= here, f"owner {index + 1} of {series} lacks {len(written - here)} points"
            else:
                assert not here, f"node {index + 1} still stores {len(here)} points of {series}, which it gave away"
