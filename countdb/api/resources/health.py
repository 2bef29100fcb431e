"""GET /health (liveness and status, the original contract; "degraded" while damaged files are quarantined)
and GET /ready (readiness for load balancers)."""

from __future__ import annotations

import time

import falcon

from countdb import __version__
from countdb.api.media import send_json
from countdb.api.services import Services

DAMAGED_LISTED = 20


class HealthResource:
    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        writable = self.services.datadir.is_writable()
        settings = self.services.settings
        damaged_count, damaged = self.services.engine.damaged_files(limit=DAMAGED_LISTED)
        # NOTE: "degraded" (quarantined damage) stays 200 so load balancers keep routing: the node serves
        # everything else (issue 7). `countdb verify --acknowledge-damage` clears it.
        cluster = self.services.cluster
        voters = cluster.layout().voters() if cluster else frozenset({0})
        up = len(voters.intersection(cluster.membership.up_nodes())) if cluster else 1
        # NOTE: cluster_size counts the members up (this node included), as the deployment guide's monitoring
        # script reads it; "degraded" while any node of the ring is down or this node is in a minority (issue
        # 12). A node that left the cluster but is still listed in CLUSTER_NODES is not counted (issue 13).
        degraded = damaged_count or up < len(voters)
        document = {
            "status": "unhealthy" if not writable else "degraded" if degraded else "healthy",
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
        send_json(resp, document, falcon.HTTP_200 if writable else falcon.HTTP_503)


class ReadyResource:
    """200 once this worker serves requests and can write; 503 while it can't (load balancers stop sending)."""

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ready = self.services.datadir.is_writable() and not self.services.writer.closed
        send_json(resp, {"ready": ready}, falcon.HTTP_200 if ready else falcon.HTTP_503)
