"""The single mapping from domain errors to HTTP statuses and `{"error": …}` bodies.

Invariant: a client never sees a traceback; anything unexpected is logged with it and answered 500.
"""

from __future__ import annotations

import logging

import falcon
import orjson

from countdb import errors
from countdb.api.auth import CHALLENGE

log = logging.getLogger(__name__)

SIZE_LIMITS = {"max_body_bytes", "max_points_per_request"}
QUERY_LIMITS = {"query_max_rows", "query_memory_limit_mb"}  # a valid query whose answer is too big: 422
RETRY_AFTER_FULL_SECONDS = 5  # a full disk: freeing space takes someone a while; writes resume at once after

STATUS = [  # most specific first
    (errors.AuthenticationRequired, falcon.HTTP_401),
    (errors.PermissionDenied, falcon.HTTP_403),
    (errors.CorruptSegment, falcon.HTTP_503),
    (errors.InvalidInput, falcon.HTTP_400),
    (errors.UnsupportedFormat, falcon.HTTP_415),
    (errors.NotAcceptable, falcon.HTTP_406),
    (errors.SeriesNotFound, falcon.HTTP_404),
    (errors.Unauthenticated, falcon.HTTP_401),
    (errors.QueryRejected, falcon.HTTP_400),
    (errors.QueryTimeout, falcon.HTTP_504),
    (errors.Unavailable, falcon.HTTP_503),
    (errors.StorageError, falcon.HTTP_503),
]


def status_of(error: errors.CountError) -> str:
    if isinstance(error, errors.LimitExceeded):
        if error.limit in QUERY_LIMITS:
            return falcon.HTTP_422
        return falcon.HTTP_413 if error.limit in SIZE_LIMITS else falcon.HTTP_400
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return falcon.HTTP_500


PROMETHEUS_ERROR_TYPES = [  # (class, errorType, status): Prometheus' API error shape, most specific first
    (errors.QueryTimeout, "timeout", falcon.HTTP_503),
    (errors.Unavailable, "unavailable", falcon.HTTP_503),
    (errors.StorageError, "unavailable", falcon.HTTP_503),
    (errors.InvalidInput, "bad_data", falcon.HTTP_400),
    (errors.CountError, "execution", falcon.HTTP_422),
]
_OWN_SHAPE = ("/api/v1/write", "/api/v1/read")


def speaks_prometheus(req: falcon.Request) -> bool:
    """The Prometheus query API answers errors as Prometheus does, not in Count's `{"error"}` shape."""
    return req.path.startswith("/api/v1/") and req.path not in _OWN_SHAPE


def prometheus_error(error: errors.CountError) -> tuple[str, dict]:
    kind, status = next((kind, status) for cls, kind, status in PROMETHEUS_ERROR_TYPES if isinstance(error, cls))
    return status, {"status": "error", "errorType": kind, "error": error.message}


def body_of(error: errors.CountError) -> dict:
    body = {"error": error.message}
    if isinstance(error, errors.InvalidInput) and error.details:
        body["data"] = error.details
    return body


def handle_count_error(req, resp, error: errors.CountError, params) -> None:
    if isinstance(error, errors.Unavailable):
        # NOTE: the access line says 503 only; a proxy rests a node that answers it, so the log says why
        log.warning("refused %s %s: %s", req.method, req.path, error.message)
    if speaks_prometheus(req):
        resp.status, body = prometheus_error(error)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(body)
        return
    resp.status = status_of(error)
    if resp.status == falcon.HTTP_503 and isinstance(error, errors.StorageError):
        log.error("storage error on %s %s: %s", req.method, req.path, error)
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps(body_of(error))
    if isinstance(error, errors.Unavailable):
        resp.set_header("Retry-After", str(RETRY_AFTER_FULL_SECONDS if isinstance(error, errors.StorageFull) else 1))
    if isinstance(error, errors.Unauthenticated):
        resp.set_header("WWW-Authenticate", 'Count-HMAC realm="cluster"')
    elif isinstance(error, errors.AuthenticationRequired):
        resp.set_header("WWW-Authenticate", CHALLENGE)


def handle_unexpected(req, resp, error: Exception, params) -> None:
    log.exception("unexpected error on %s %s", req.method, req.path)
    resp.status = falcon.HTTP_500
    resp.content_type = falcon.MEDIA_JSON
    message = "internal error; the server log has the details"
    body = {"status": "error", "errorType": "internal", "error": message} if speaks_prometheus(req) else {
        "error": message}
    resp.data = orjson.dumps(body)


def serialize_http_error(req, resp, error: falcon.HTTPError) -> None:
    """Falcon's own errors (404, 405, bad params…) in Count's `{"error": …}` shape."""
    message = f"{error.title}: {error.description}" if error.description else error.title
    resp.content_type = falcon.MEDIA_JSON
    body = {"status": "error", "errorType": "bad_data", "error": message} if speaks_prometheus(req) else {
        "error": message}
    resp.data = orjson.dumps(body)


def register(app: falcon.App) -> None:
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(errors.CountError, handle_count_error)
    app.set_error_serializer(serialize_http_error)
