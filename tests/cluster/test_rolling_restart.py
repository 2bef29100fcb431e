"""A rolling restart behind the repository's nginx.conf: three real nodes, real nginx in front, continuous writes
and queries through nginx while each node in turn is stopped (SIGTERM) and started again. No client write fails,
no query fails or answers wrongly, and every acknowledged point is then on every node, once."""

from __future__ import annotations

import threading
import time

import requests

from support.cluster import Writers, assert_every_node_holds_exactly
from support.proxies import free_port, make_tls, nginx_command, render_nginx_conf, start_proxy

WRITE_PAUSE_SECONDS = 0.03  # ~30 writes/s per writer: inside nginx's 100 r/s per-client write limit
BETWEEN_NODES_SECONDS = 6  # longer than nginx's fail_timeout (5 s), as nginx.conf asks of a rolling restart


KNOWN = [{"series": "known", "timestamp": 1_600_000_000_000 + i, "value": float(i)} for i in range(300)]


class Readers:
    """A thread that asks for the known series through the proxy until stopped, recording every answer that is
    not exactly the known points (a failed query or a wrong answer)."""

    def __init__(self, url: str, verify: str):
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


def test_a_rolling_restart_behind_nginx_fails_no_write(shared_cluster, tmp_path):
    cluster = shared_cluster
    tls = make_tls(tmp_path)
    http_port, https_port = free_port(), free_port()
    conf = render_nginx_conf(tmp_path, cluster.addresses, tls, http_port, https_port)
    proxy = start_proxy("nginx", nginx_command(conf, tmp_path), tmp_path, http_port, https_port,
                        tmp_path / "error.log", tls.cert)
    try:
        assert requests.post(proxy.url + "/insert", json=KNOWN, timeout=30, verify=str(tls.cert)).status_code == 201
        with Writers([proxy.url, proxy.url], verify=str(tls.cert), pause_seconds=WRITE_PAUSE_SECONDS) as writers, \
                Readers(proxy.url, str(tls.cert)) as readers:
            for node in cluster.nodes:
                time.sleep(BETWEEN_NODES_SECONDS)
                assert node.stop() == 0
                node.start()
                cluster.wait_formed()
            time.sleep(1)
        assert not writers.failures, (f"{len(writers.failures)} writes failed, e.g. {writers.failures[:3]}; nginx:\n"
                                      + proxy.log_text())
        assert len(writers.acknowledged) > 100
        assert readers.answers > 100 and not readers.wrong, (f"{len(readers.wrong)} of {readers.answers} queries "
                                                             f"failed or answered wrongly, e.g. {readers.wrong[:3]}")
        assert_every_node_holds_exactly(cluster, writers, [0, 1, 2])
    finally:
        proxy.stop()
