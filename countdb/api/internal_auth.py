"""InternalAuth: the Falcon middleware that admits a request to an internal route (/cluster/*, /replicate) only
with a valid signature from a node sharing CLUSTER_SECRET (cluster/auth.py); public routes pass untouched.

Invariant: the body is read (bounded) and checked before routing, and responders read it from
req.context.body, so nothing reaches an internal responder unauthenticated.
"""

from __future__ import annotations

import falcon

from countdb.api.media import read_body
from countdb.cluster.auth import NODE_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIME_HEADER, Verifier

INTERNAL_PREFIXES = ("/cluster/", "/replicate")
_SIGNED_HEADERS = (TIME_HEADER, NONCE_HEADER, SIGNATURE_HEADER, NODE_HEADER)
REPLAY_HARMLESS = frozenset({"/cluster/write"})
"""Routes whose replay stores nothing new, so they skip the nonce register: a copy of a write carries its points
with the stamps its coordinator gave them, and storing them again changes no answer (the last write per series
and time still wins, a delete's tombstone still hides what it hid, a node keeps only the series it owns), as a
retried hint already does. Copies are the cluster's most frequent internal request; the register cost the node
about 0.6 ms of CPU per copy and each copy a wait for the worker's GIL (docs/performance.md, *The cluster's write
path*)."""


def is_internal(path: str) -> bool:
    return path.startswith(INTERNAL_PREFIXES)


class InternalAuth:
    def __init__(self, verifier: Verifier, max_body_bytes: int):
        self.verifier = verifier
        self.max_body_bytes = max_body_bytes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not is_internal(req.path):
            return
        target = f"{req.path}?{req.query_string}" if req.query_string else req.path
        headers = {name: req.get_header(name) for name in _SIGNED_HEADERS}
        # NOTE: signature before body: an unsigned request is refused without reading what it sends.
        if not all(headers.values()):
            self.verifier.verify(req.method, target, headers, b"")
        body = read_body(req, self.max_body_bytes)
        req.context.peer = self.verifier.verify(req.method, target, headers, body,
                                                once=req.path not in REPLAY_HARMLESS)
        req.context.body = body
