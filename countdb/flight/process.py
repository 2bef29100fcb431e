"""The Flight process: opens its own services (a writer with its own WAL folder, like a gunicorn worker),
serves Arrow Flight on BIND_ADDRESS's host and FLIGHT_PORT, and stops on SIGTERM/SIGINT or when its parent
(the gunicorn master) is gone, flushing its buffer first.

Invariant: a point is acknowledged only after its WAL append, so a kill -9 loses nothing acknowledged: the
next start (or a live worker) adopts this process's WAL folder as a dead writer's.
"""

from __future__ import annotations

import logging
import logging.config
import os
import socket

import pyarrow.flight as flight

from countdb.api.services import Services
from countdb.config import Settings
from countdb.flight.server import CountFlightServer
from countdb.obs.logging import logging_config
from countdb.obs.readiness import announce_ready, stop_on_signals, wait_until_stopped

log = logging.getLogger(__name__)


def main() -> None:
    settings = Settings.from_env()
    logging.config.dictConfig(logging_config(settings.log_level))
    parent, stop = os.getppid(), stop_on_signals()
    _check_port_free(settings.bind_host, settings.flight_port)
    services = Services.open(settings)
    try:
        server = CountFlightServer(flight.Location.for_grpc_tcp(settings.bind_host, settings.flight_port), services)
    except Exception:
        services.close()
        raise
    log.info("Arrow Flight listening on %s:%d", settings.bind_host, server.port)
    announce_ready(server.port)
    wait_until_stopped(stop, parent, log, "Arrow Flight")
    server.shutdown()
    services.close()


def _check_port_free(host: str, port: int) -> None:
    """gRPC binds with SO_REUSEPORT, so a second Flight server on the same port (another count-server on
    this host) would silently share its connections; a plain bind first makes that a start-up error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise SystemExit(f"count-server: FLIGHT_PORT {port} on {host} is not free: {error.strerror}") from None

