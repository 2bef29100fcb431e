"""RequestObserver: the Falcon middleware that gives each request an id, an access-log line and its metrics,
and makes a streamed answer that fails midway end as a cut connection (api/streaming.py).

Invariant: every log line emitted while a request is handled carries its id (REQUEST_ID is set before routing
and reset after the response, in the worker thread that handles it), and the id is echoed in X-Request-ID.
"""

from __future__ import annotations

import logging
import os
import re
import time

import falcon
from falcon.constants import COMBINED_METHODS

from countdb.api.internal_auth import INTERNAL_PREFIXES
from countdb.api.streaming import cut_on_error
from countdb.obs import metrics
from countdb.obs.logging import REQUEST_ID

access_log = logging.getLogger("countdb.access")

REQUEST_ID_HEADER = "X-Request-ID"
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # the proxies' rule (nginx/): UUIDs, hex and trace ids
_METHODS = frozenset(COMBINED_METHODS)
UNMATCHED_ROUTE = "unmatched"  # 404s: one label value, not one per path a scanner tries


def request_id_of(header: str | None) -> str:
    """The client's X-Request-ID when it is a sane token, else a new random one (32 hex digits: 128 random bits,
    like a UUID's hex without the version bits, at a third of uuid4's cost)."""
    if header is not None and _CLIENT_ID.fullmatch(header):
        return header
    return os.urandom(16).hex()


class RequestObserver:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.request_id = request_id_of(req.get_header(REQUEST_ID_HEADER))
        req.context.request_id_token = REQUEST_ID.set(req.context.request_id)
        req.context.started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        seconds = time.perf_counter() - req.context.started
        route = req.uri_template or UNMATCHED_ROUTE
        method = req.method if req.method in _METHODS else "other"
        status = resp.status_code
        resp.set_header(REQUEST_ID_HEADER, req.context.request_id)
        if resp.stream is not None:
            resp.stream = cut_on_error(resp.stream, req.env.get("gunicorn.socket"), req.context.request_id)
        metrics.HTTP_REQUESTS.labels(route, method, str(status)).inc()
        metrics.HTTP_REQUEST_SECONDS.labels(route).observe(seconds)
        # NOTE: internal routes (heartbeats every few seconds from each peer) log at debug, not in every line.
        level = logging.DEBUG if req.path.startswith(INTERNAL_PREFIXES) else logging.INFO
        fields = {"method": req.method, "path": req.path, "route": route, "status": status,
                  "duration_ms": round(seconds * 1000, 3), "remote_addr": req.remote_addr, "user_agent": req.user_agent}
        if "token_id" in req.context:  # AUTH_REQUIRED: which access token (its public id) made the request
            fields["token_id"] = req.context.token_id
        access_log.log(level, "%s %s %d", req.method, req.path, status, extra={"fields": fields})
        REQUEST_ID.reset(req.context.request_id_token)


PARTIAL_HEADER = "X-Count-Partial"


class MinorityNotice:
    """In a cluster, marks every answer given while this node reaches fewer than a majority of the nodes: such a
    node refuses writes and answers reads from what it holds, which may miss recent points."""

    def __init__(self, membership):
        self.membership = membership

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        if not self.membership.has_majority():
            resp.set_header(PARTIAL_HEADER, "minority: this node reaches fewer than a majority of the cluster")
