"""A rolling restart behind the repository's nginx.conf: three real nodes, real nginx in front, continuous writes
and queries through nginx while each node in turn is stopped (SIGTERM) and started again. No client write fails,
no query fails or answers wrongly, and every acknowledged point is then on every node, once."""

from __future__ import annotations

import time

import requests

from support.cluster import KNOWN, Readers, Writers, assert_every_node_holds_exactly
from bench.proxies import render_nginx_conf
from support.proxies import free_port, make_tls, nginx_command, start_proxy

WRITE_PAUSE_SECONDS = 0.03  # ~30 writes/s per writer: inside nginx's 100 r/s per-client write limit
BETWEEN_NODES_SECONDS = 6  # longer than nginx's fail_timeout (5 s), as nginx.conf asks of a rolling restart


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
