"""GET /health (liveness and status, the original contract; "degraded" while damaged files are quarantined, the
disk is full, flushes or background compactions fail, with `problems` saying why) and GET /ready (readiness for
load balancers)."""

from __future__ import annotations

import time

import falcon

from countdb import __version__
from countdb.api.media import send_json
from countdb.api.services import Services
from countdb.ingest.compaction import last_compaction
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
        cluster = self.services.cluster
        voters = cluster.layout().voters() if cluster else frozenset({0})
        up = len(voters.intersection(cluster.membership.up_nodes())) if cluster else 1
        # NOTE: cluster_size counts the members up (this node included), as the deployment guide's monitoring
        # script reads it; "degraded" while any node of the ring is down or this node is in a minority (issue
        # 12). A node that left the cluster but is still listed in CLUSTER_NODES is not counted (issue 13).
        if up < len(voters):
            problems.append(f"{len(voters) - up} of the cluster's {len(voters)} nodes are down")
        # NOTE: "degraded" (quarantined damage, a full disk) stays 200, so load balancers keep routing and
        # liveness probes don't restart a node that still serves queries (issues 7, 14); "unhealthy" (503) is
        # a data directory that can't be written for another reason (read-only, permissions).
        unhealthy = not writable and not disk_full
        document = {
            "status": "unhealthy" if unhealthy else "degraded" if problems else "healthy",
            "problems": problems,
            "disk": {"free_bytes": free_bytes, "total_bytes": total_bytes,
                     "min_free_bytes": self.services.space.min_free_bytes, "writes_refused": disk_full},
            "node_id": settings.node_id_value,
            "cluster_size": up,
            "version": __version__,
            "uptime_seconds": round(time.monotonic() - self.services.started_monotonic, 3),
            "buffered_points": self.services.writer.buffered_points,
            "data_dir_writable": writable,
            "damaged_files": damaged_count,
            "damaged": [{"path": d.path, "problem": d.problem, "quarantined_as": d.quarantined_as} for d in damaged],
        }
        if cluster:
            majority = cluster.membership.has_majority()
            document["cluster"] = {"nodes": len(voters), "members_up": up, "majority": majority,
                                   "membership_change": cluster.layout().phase,
                                   "peer_problems": [f"node {node + 1}: {member.error}" for node, member
                                                     in sorted(cluster.membership.members().items())
                                                     if member.error and node in voters],
                                   "writes": "accepted" if majority else "refused: this node is in a minority",
                                   "hints_pending": sum(cluster.hints.counts().values())}
        send_json(resp, document, falcon.HTTP_503 if unhealthy else falcon.HTTP_200)


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
    compaction = last_compaction(services.datadir.last_compaction_path) or {}
    if compaction.get("error"):
        seconds = time.time() - compaction.get("failing_since", compaction["finished"])
        problems.append(f"background compaction has been failing for {seconds:.0f}s ({compaction['error']}): "
                        "blocks are not merged and retention is not applied until it works again; the server log "
                        "says why")
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
