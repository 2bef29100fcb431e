"""AccessControl: with AUTH_REQUIRED on, the Falcon middleware that lets a request reach its responder only
with an access token granting the scope its route needs (ROUTE_SCOPES), checked before the body is read.

Invariant: this is the only place tokens are checked; every route of the app has an entry in ROUTE_SCOPES (a
test holds it), and a route missing from it needs `admin`. Paths under INTERNAL_PREFIXES are the cluster's own
routes, authenticated by the cluster secret, and are left alone here.
"""

from __future__ import annotations

import base64
import binascii

import falcon

from countdb.catalog.tokens import TokenCache
from countdb.errors import AuthenticationRequired, PermissionDenied

OPEN = None  # a route anyone may call: probes
INTERNAL_PREFIXES = ("/cluster/", "/replicate")
CHALLENGE = 'Bearer realm="count", Basic realm="count"'

ROUTE_SCOPES: dict[str, str | None] = {
    "/insert": "write",
    "/write": "write",
    "/api/v2/write": "write",
    "/api/v3/write_lp": "write",
    "/api/v1/write": "write",
    "/query/range/{series:path}": "read",
    "/query/aggregated/{series:path}": "read",
    "/query/sql": "read",
    "/query/range": "read",
    "/query/aggregated": "read",
    "/series": "read",
    "/tags": "read",
    "/tags/{key}/values": "read",
    "/series/{series:path}": "admin",  # DELETE: deletes points
    "/health": OPEN,
    "/ready": OPEN,
    "/metrics": "read",  # OPEN with METRICS_AUTH=false
    "/api/v1/read": "read",
    "/api/v1/query": "read",
    "/api/v1/query_range": "read",
    "/api/v1/series": "read",
    "/api/v1/labels": "read",
    "/api/v1/label/{name}/values": "read",
    "/api/v1/metadata": "read",
    "/api/v1/status/buildinfo": "read",
    "/storage": "read",
    "/status": "read",
    "/": "read",  # NOTE: the console: a browser asks for the token once (Basic) and sends it with every call
    "/console/{path:path}": "read",
    "/openapi.json": OPEN,  # describes the API, holds no data
}


def route_scopes(metrics_auth: bool) -> dict[str, str | None]:
    """ROUTE_SCOPES with /metrics open unless METRICS_AUTH is on."""
    return {**ROUTE_SCOPES, "/metrics": "read" if metrics_auth else OPEN}


CREDENTIAL_PARAMS = ("u", "p")
"""InfluxDB v1's credentials in the query string: never passed on to another node (api/resources/query.py)."""


def presented_token(req: falcon.Request) -> str | None:
    """The token a request carries, the ways existing clients send one: `Authorization: Token …` (InfluxDB
    v2/v3 clients), `Bearer …` (Prometheus, Grafana), `Basic` with the token as password, or InfluxDB v1's
    `p` query parameter (`u` is ignored). None when there is none."""
    header = req.get_header("Authorization")
    if header is None:
        return req.get_param("p") or None
    scheme, _, credentials = header.strip().partition(" ")
    scheme, credentials = scheme.lower(), credentials.strip()
    if scheme in ("token", "bearer"):
        return credentials or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials + "=" * (-len(credentials) % 4), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


class AccessControl:
    def __init__(self, tokens: TokenCache, scopes: dict[str, str | None]):
        self.tokens = tokens
        self.scopes = scopes

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        if req.path.startswith(INTERNAL_PREFIXES):
            return
        needed = self.scopes.get(req.uri_template, "admin")
        if needed is OPEN:
            return
        token = presented_token(req)
        if token is None:
            raise AuthenticationRequired("this Count server needs an access token: send `Authorization: Bearer "
                                         "<token>` (or Token, or basic auth with the token as password)")
        info = self.tokens.find(token)
        if info is None:
            raise AuthenticationRequired("the access token is not valid (unknown, revoked or mistyped)")
        if not info.grants(needed):
            raise PermissionDenied(f"token {info.token_id} ({info.name}) has scopes "
                                   f"{', '.join(sorted(info.scopes))}; this needs {needed}", scope=needed)
        req.context.token_id = info.token_id
