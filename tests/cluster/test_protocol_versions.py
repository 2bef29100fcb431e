"""Rolling upgrades: nodes exchange their cluster protocol version in heartbeats, and a node treats a peer that
speaks another one as down, saying why in its log and in /health (here the peer is a stand-in that answers
heartbeats as a node of a future version would)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from countdb.cluster.auth import PROTOCOL_VERSION
from support.cluster import FAST_CLUSTER_ENV, Cluster, free_ports

FUTURE = PROTOCOL_VERSION + 1


class FutureNode(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = json.dumps({"node": 2, "protocol": FUTURE, "version": "99.0", "time": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_a_peer_speaking_another_protocol_is_refused_with_a_log_line_and_a_health_problem(count_server, tmp_path):
    future = ThreadingHTTPServer(("127.0.0.1", 0), FutureNode)
    threading.Thread(target=future.serve_forever, daemon=True).start()
    try:
        ports = free_ports(4)
        addresses = [f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}", f"127.0.0.1:{future.server_port}"]
        nodes = [count_server(tmp_path / f"node{i + 1}", BIND_ADDRESS=addresses[i], CLUSTER_ENABLED="true",
                              CLUSTER_NODES=",".join(addresses), NODE_ID=str(i + 1), FLIGHT_PORT=str(ports[2 + i]),
                              REPLICATION_FACTOR="2", **FAST_CLUSTER_ENV) for i in range(2)]
        cluster = Cluster(nodes, addresses, ports[2:])

        def refused() -> bool:  # and, with 2 of 3 up, degraded but in the majority: writes go on
            health = requests.get(cluster.url(0) + "/health", timeout=10).json()
            return (health["cluster"]["members_up"] == 2 and health["cluster"]["majority"] is True
                    and health["status"] == "degraded" and any(f"speaks cluster protocol {FUTURE}" in problem
                                                               for problem in health["cluster"]["peer_problems"]))

        cluster.wait_until(refused, 20, "node 1 refuses node 3, says why, and keeps its majority")
        assert f"node 3 speaks cluster protocol {FUTURE}" in nodes[0].log_text()
        point = [{"series": "upgrade", "timestamp": 1_700_000_000_000, "value": 1.0}]
        # NOTE: each worker rereads the agent's view every 0.2 s (cluster/members.py RELOAD_SECONDS): /health, from
        # one worker, may see node 2 up a moment before the worker a write lands on does (CI: a 503 30 ms after)
        cluster.wait_until(lambda: requests.post(cluster.url(0) + "/insert", json=point, timeout=30).status_code == 201,
                           5, "node 1 takes writes with 2 of 3 nodes up")
    finally:
        future.shutdown()
