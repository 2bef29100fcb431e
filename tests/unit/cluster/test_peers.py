"""PeerClient reaches peers directly: a proxy set in the environment for a container's outbound traffic must not
carry (or break) internal calls."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from countdb.cluster.peers import PeerClient


class Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_a_proxy_in_the_environment_is_not_used_for_peer_calls(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the discard port: nothing answers there
        monkeypatch.setenv("NO_PROXY", "")
        peers = PeerClient(("127.0.0.1:1", f"127.0.0.1:{server.server_address[1]}"), 0, "secret", 5.0)
        assert peers.call(1, "GET", "/cluster/heartbeat").status == 200
        peers.close()
    finally:
        server.shutdown()
