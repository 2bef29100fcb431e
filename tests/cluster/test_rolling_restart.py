"""A rolling restart behind the repository's nginx.conf: three real nodes, real nginx in front, continuous writes
through nginx while each node in turn is stopped (SIGTERM) and started again. No client write fails, and every
acknowledged point is then on every node, once."""

from __future__ import annotations

import itertools
import threading
import time

import requests

from support.cluster import assert_every_node_holds_exactly
from support.proxies import free_port, make_tls, nginx_command, render_nginx_conf, start_proxy

WRITE_PAUSE_SECONDS = 0.03  # ~30 writes/s per writer: inside nginx's 100 r/s per-client write limit
BETWEEN_NODES_SECONDS = 6  # longer than nginx's fail_timeout (5 s), as nginx.conf asks of a rolling restart


class ProxyWriters:
    """Writers that go through the proxy, recording every acknowledged point and every failed request."""

    def __init__(self, url: str, cert, threads: int = 2):
        self.url, self.cert = url, str(cert)
        self.acknowledged: set[tuple[str, int]] = set()
        self.attempted: set[tuple[str, int]] = set()
        self.failures: list[str] = []
        self._stop, self._lock, self._ts = threading.Event(), threading.Lock(), itertools.count()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> "ProxyWriters":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self) -> None:
        session = requests.Session()
        for _ in range(20_000):  # bounded
            if self._stop.is_set():
                return
            offset = next(self._ts)
            batch = [(f"w{s}", 1_700_000_000_000 + offset) for s in range(6)]
            with self._lock:
                self.attempted.update(batch)
            body = [{"series": series, "timestamp": ts, "value": 1.0} for series, ts in batch]
            try:
                response = session.post(self.url + "/insert", json=body, timeout=30, verify=self.cert)
                outcome = response.status_code
            except requests.RequestException as error:
                outcome = f"{type(error).__name__}: {error}"
            with self._lock:
                if outcome == 201:
                    self.acknowledged.update(batch)
                else:
                    self.failures.append(str(outcome) if isinstance(outcome, str) else f"{outcome}: {response.text}")
            time.sleep(WRITE_PAUSE_SECONDS)


def test_a_rolling_restart_behind_nginx_fails_no_write(shared_cluster, tmp_path):
    cluster = shared_cluster
    tls = make_tls(tmp_path)
    http_port, https_port = free_port(), free_port()
    conf = render_nginx_conf(tmp_path, cluster.addresses, tls, http_port, https_port)
    proxy = start_proxy("nginx", nginx_command(conf, tmp_path), tmp_path, http_port, https_port,
                        tmp_path / "error.log", tls.cert)
    try:
        with ProxyWriters(proxy.url, tls.cert) as writers:
            for node in cluster.nodes:
                time.sleep(BETWEEN_NODES_SECONDS)
                assert node.stop() == 0
                node.start()
                cluster.wait_formed()
            time.sleep(1)
        assert not writers.failures, (f"{len(writers.failures)} writes failed, e.g. {writers.failures[:3]}; nginx:\n"
                                      + proxy.log_text())
        assert len(writers.acknowledged) > 100
        assert_every_node_holds_exactly(cluster, writers, [0, 1, 2])
    finally:
        proxy.stop()
