"""GET /health (liveness and status, the original contract; "degraded" while damaged files are quarantined, the
disk is full or flushes fail, with `problems` saying why) and GET /ready (readiness for load balancers)."""

from __future__ import annotations

import time

import falcon

from countdb import __version__
from countdb.api.media import send_json
from countdb.api.services import Services
from countdb.storage.space import is_out_of_space

DAMAGED_LISTED = 20


class HealthResource:
    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        write_error = self.services.datadir.write_error()
        writable = write_error is None
        settings = self.services.settings
        free_bytes, total_bytes = self.services.space.usage()
        disk_full = free_bytes < max(self.services.space.min_free_bytes, 1) or is_out_of_space(write_error)
        damaged_count, damaged = self.services.engine.damaged_files(limit=DAMAGED_LISTED)
        problems = _problems(self.services, free_bytes, disk_full, writable, damaged_count)
        # NOTE: "degraded" (quarantined damage, a full disk) stays 200, so load balancers keep routing and
        # liveness probes don't restart a node that still serves queries (issues 7, 14); "unhealthy" (503) is
        # a data directory that can't be written for another reason (read-only, permissions).
        unhealthy = not writable and not disk_full
        send_json(resp, {
            "status": "unhealthy" if unhealthy else "degraded" if problems else "healthy",
            "problems": problems,
            "disk": {"free_bytes": free_bytes, "total_bytes": total_bytes,
                     "min_free_bytes": self.services.space.min_free_bytes, "writes_refused": disk_full},
            "node_id": settings.node_id_value,
            "cluster_size": settings.cluster_size,
            "version": __version__,
            "uptime_seconds": round(time.monotonic() - self.services.started_monotonic, 3),
            "buffered_points": self.services.writer.buffered_points,
            "data_dir_writable": writable,
            "damaged_files": damaged_count,
            "damaged": [{"path": d.path, "problem": d.problem, "quarantined_as": d.quarantined_as} for d in damaged],
        }, falcon.HTTP_503 if unhealthy else falcon.HTTP_200)


def _problems(services: Services, free_bytes: int, disk_full: bool, writable: bool, damaged_count: int) -> list[str]:
    """Why the node is not healthy, one sentence each (empty when it is)."""
    problems = []
    if disk_full:
        problems.append(services.space.full(free_bytes).message)
    elif not writable:
        problems.append(f"the data directory {services.datadir.root} cannot be written (read-only or permissions)")
    if services.writer.flush_failing_since is not None:
        seconds = time.monotonic() - services.writer.flush_failing_since
        problems.append(f"flushes have been failing for {seconds:.0f}s (the server log says why); unflushed points "
                        "stay in the WAL and are served")
    if damaged_count:
        problems.append(f"{damaged_count} damaged files quarantined (see `damaged`; `countdb verify`)")
    return problems


class ReadyResource:
    """200 once this worker serves requests; 503 while it shuts down or its data directory can't be written
    (load balancers stop sending). A full disk keeps it ready: queries are served, writes get 503 + Retry-After."""

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        write_error = self.services.datadir.write_error()
        writable = write_error is None or is_out_of_space(write_error)  # a full disk still serves queries
        ready = writable and not self.services.writer.closed
        send_json(resp, {"ready": ready}, falcon.HTTP_200 if ready else falcon.HTTP_503)
