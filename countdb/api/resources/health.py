"""GET /health (liveness and status, the original contract) and GET /ready (readiness for load balancers)."""

from __future__ import annotations

import time

import falcon

from countdb import __version__
from countdb.api.media import send_json
from countdb.api.services import Services


class HealthResource:
    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        writable = self.services.datadir.is_writable()
        settings = self.services.settings
        send_json(resp, {
            "status": "healthy" if writable else "unhealthy",
            "node_id": settings.node_id_value,
            "cluster_size": settings.cluster_size,
            "version": __version__,
            "uptime_seconds": round(time.monotonic() - self.services.started_monotonic, 3),
            "buffered_points": self.services.writer.buffered_points,
            "data_dir_writable": writable,
        }, falcon.HTTP_200 if writable else falcon.HTTP_503)


class ReadyResource:
    """200 once this worker serves requests and can write; 503 while it can't (load balancers stop sending)."""

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ready = self.services.datadir.is_writable() and not self.services.writer.closed
        send_json(resp, {"ready": ready}, falcon.HTTP_200 if ready else falcon.HTTP_503)
