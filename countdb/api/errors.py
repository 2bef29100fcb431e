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


def body_of(error: errors.CountError) -> dict:
    body = {"error": error.message}
    if isinstance(error, errors.InvalidInput) and error.details:
        body["data"] = error.details
    return body


def handle_count_error(req, resp, error: errors.CountError, params) -> None:
    resp.status = status_of(error)
    if resp.status == falcon.HTTP_503 and isinstance(error, errors.StorageError):
        log.error("storage error on %s %s: %s", req.method, req.path, error)
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps(body_of(error))
    if isinstance(error, errors.Unavailable):
        resp.set_header("Retry-After", str(RETRY_AFTER_FULL_SECONDS if isinstance(error, errors.StorageFull) else 1))
    elif isinstance(error, errors.AuthenticationRequired):
        resp.set_header("WWW-Authenticate", CHALLENGE)


def handle_unexpected(req, resp, error: Exception, params) -> None:
    log.exception("unexpected error on %s %s", req.method, req.path)
    resp.status = falcon.HTTP_500
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps({"error": "internal error; the server log has the details"})


def serialize_http_error(req, resp, error: falcon.HTTPError) -> None:
    """Falcon's own errors (404, 405, bad params…) in Count's `{"error": …}` shape."""
    message = f"{error.title}: {error.description}" if error.description else error.title
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps({"error": message})


def register(app: falcon.App) -> None:
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(errors.CountError, handle_count_error)
    app.set_error_serializer(serialize_http_error)
