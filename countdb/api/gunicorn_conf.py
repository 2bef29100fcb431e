"""gunicorn settings and hooks for Count (the repo's gunicorn.conf.py re-exports this module).

The master prepares the node (metrics folder, migrations, WAL replay) and holds the port before forking; each
worker listens on that port with its own SO_REUSEPORT socket, opens its own services when it imports
countdb.api.wsgi, and flushes them in worker_exit on SIGTERM/SIGINT.
"""

from __future__ import annotations

import os
import socket

from gunicorn.glogging import Logger

from countdb.api.child_process import ChildProcess
from countdb.api.listen import address_of, hold_port
from countdb.config import Settings
from countdb.datadir import DataDir
from countdb.obs.logging import logging_config
from countdb.obs.memory import bound_allocators, freeze_start_up_objects
from countdb.obs.multiprocess import use_metrics_dir

settings = Settings.from_env()
# NOTE: before anything imports prometheus_client (the hooks below import Count's services lazily for this):
# it chooses multiprocess mode once, at import, from PROMETHEUS_MULTIPROC_DIR (issue 6).
use_metrics_dir(settings.metrics_dir or DataDir(settings.data_dir).metrics)

wsgi_app = "countdb.api.wsgi:app"
bind = [settings.bind_address]
# NOTE: one listening socket per worker (gunicorn ≥ 24 creates them in each worker when reuse_port is set), so
# the kernel spreads new connections over the workers. With one shared socket, a worker that is up first (or
# merely awake first) accepted every connection of a burst and kept them for their keep-alive life, while the
# other worker served nothing: single inserts ran at a third of the rate in one run of five (issue 17).
reuse_port = True
workers = settings.workers
# NOTE: gthread with request buffering and a lane of threads each for internal requests, writes and probes, and
# queries: idle, slow and stalled clients cost no thread, and nodes never wait on each other's client threads.
worker_class = "countdb.api.worker.CountWorker"
threads = settings.threads
keepalive = 75  # longer than nginx's and HAProxy's default upstream keep-alive, so proxies close first
graceful_timeout = int(settings.shutdown_grace_seconds)
timeout = max(60, int(settings.query_timeout_seconds * 2))
preload_app = False
limit_request_line = 8190
logconfig_dict = logging_config(settings.log_level)


class CountLogger(Logger):
    """gunicorn's logger without its access log, which Count writes itself (countdb.access). With `logconfig_dict`
    set, gunicorn builds each request's access-log fields even though its access logger drops them."""

    def access(self, resp, req, environ, request_time) -> None:
        pass


logger_class = CountLogger
proc_name = f"count-{settings.node_id}"
control_socket_disable = True  # gunicorn's runtime control socket: unused, and it would write outside DATA_DIR
children: list[ChildProcess] = []
held_port: socket.socket | None = None


def on_starting(server) -> None:
    global held_port
    bound_allocators()
    # The workers bind the held port: BIND_ADDRESS's port 0 becomes one free port for them all.
    held_port = hold_port(settings.bind_host, settings.bind_port)
    server.cfg.set("bind", [address_of(held_port)])
    from countdb.api.services import prepare_node

    replayed = prepare_node(settings)
    if replayed:
        server.log.warning("replayed %d points from the WAL of a previous run", replayed)
    if settings.flight_port:
        flight = ChildProcess.start("countdb.flight", "Arrow Flight", server.log)
        children.append(flight)
        server.log.info("Arrow Flight process %d listening on port %d", flight.process.pid, flight.port)
    if settings.compaction_interval_seconds > 0:
        compactor = ChildProcess.start("countdb.ingest.compaction_process", "compactor", server.log)
        children.append(compactor)
        server.log.info("compactor process %d started", compactor.process.pid)
    if settings.cluster_enabled:
        agent = ChildProcess.start("countdb.cluster", "cluster agent", server.log)
        children.append(agent)
        server.log.info("cluster agent process %d started: node %d of %d", agent.process.pid,
                        settings.node_index + 1, len(settings.cluster_nodes))


def on_exit(server) -> None:
    """Stop the Flight process (it flushes like a worker), the compactor and the cluster agent."""
    for child in children:
        child.stop(settings.shutdown_grace_seconds)


def when_ready(server) -> None:
    """With COUNT_READY_FILE set, write the bound address there (tests bind port 0 and read it back)."""
    server.log.info("workers listen on %s, one SO_REUSEPORT socket each", address_of(held_port))
    target = os.environ.get("COUNT_READY_FILE")
    if target:
        with open(target + ".tmp", "w") as handle:
            handle.write(address_of(held_port) + "\n")
        os.replace(target + ".tmp", target)


def post_worker_init(worker) -> None:
    """The app is loaded: its start-up objects leave the garbage collector's full collections."""
    worker.log.info("worker %d: %d start-up objects frozen", worker.pid, freeze_start_up_objects())


def worker_exit(server, worker) -> None:
    """Flush this worker's buffer (graceful stop, SIGINT, or its master vanished)."""
    import sys

    wsgi = sys.modules.get("countdb.api.wsgi")
    if wsgi is not None:
        wsgi.services.close()


def child_exit(server, worker) -> None:
    """A dead worker's live gauges (buffered points) stop counting; its counters and histograms stay summed."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
