"""gunicorn settings and hooks for Count (the repo's gunicorn.conf.py re-exports this module).

The master prepares the node (metrics folder, migrations, WAL replay) before forking; each worker opens its
own services when it imports countdb.api.wsgi, and flushes them in worker_exit on SIGTERM/SIGINT.
"""

from __future__ import annotations

import os

from countdb.api.child_process import ChildProcess
from countdb.config import Settings
from countdb.datadir import DataDir
from countdb.obs.logging import logging_config
from countdb.obs.memory import bound_allocators
from countdb.obs.multiprocess import use_metrics_dir

settings = Settings.from_env()
# NOTE: before anything imports prometheus_client (the hooks below import Count's services lazily for this):
# it chooses multiprocess mode once, at import, from PROMETHEUS_MULTIPROC_DIR (issue 6).
use_metrics_dir(settings.metrics_dir or DataDir(settings.data_dir).metrics)

wsgi_app = "countdb.api.wsgi:app"
bind = [settings.bind_address]
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
proc_name = f"count-{settings.node_id}"
control_socket_disable = True  # gunicorn's runtime control socket: unused, and it would write outside DATA_DIR
children: list[ChildProcess] = []


def on_starting(server) -> None:
    bound_allocators()
    from countdb.api.services import prepare_node

    replayed = prepare_node(settings)
    if replayed:
        server.log.warning("replayed %d points from the WAL of a previous run", replayed)
    if settings.flight_port:
        flight = ChildProcess.start("countdb.flight", "Arrow Flight", server.log)
        children.append(flight)
        server.log.info("Arrow Flight process %d listening on port %d", flight.process.pid, flight.port)
    if settings.cluster_enabled:
        agent = ChildProcess.start("countdb.cluster", "cluster agent", server.log)
        children.append(agent)
        server.log.info("cluster agent process %d started: node %d of %d", agent.process.pid,
                        settings.node_index + 1, len(settings.cluster_nodes))


def on_exit(server) -> None:
    """Stop the Flight process (it flushes like a worker) and the cluster agent."""
    for child in children:
        child.stop(settings.shutdown_grace_seconds)


def when_ready(server) -> None:
    """With COUNT_READY_FILE set, write the bound address there (tests bind port 0 and read it back)."""
    target = os.environ.get("COUNT_READY_FILE")
    if target:
        host, port = server.LISTENERS[0].sock.getsockname()[:2]
        with open(target + ".tmp", "w") as handle:
            handle.write(f"{host}:{port}\n")
        os.replace(target + ".tmp", target)


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
