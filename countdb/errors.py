"""Domain errors. Each carries structured context; none knows about HTTP (api/errors.py maps them)."""

from __future__ import annotations


class CountError(Exception):
    """Base of every error Count raises on purpose."""

    def __init__(self, message: str, **context):
        super().__init__(message)
        self.message = message
        self.context = context


class InvalidInput(CountError):
    """The client sent something malformed. `field`, `index` or `line` say where."""

    def __init__(self, message: str, *, field: str | None = None, index: int | None = None,
                 line: int | None = None, details: list | None = None):
        super().__init__(message, field=field, index=index, line=line)
        self.field = field
        self.index = index
        self.line = line
        self.details = details or []


class LimitExceeded(CountError):
    """A configured limit (body size, points per request, key length…) was passed. `limit` names it."""

    def __init__(self, message: str, *, limit: str, maximum: int | None = None):
        super().__init__(message, limit=limit, maximum=maximum)
        self.limit = limit
        self.maximum = maximum


class UnsupportedFormat(CountError):
    """The content type or encoding is not one the endpoint takes."""


class NotAcceptable(CountError):
    """None of the response formats the client accepts is one the endpoint can produce."""


class SeriesNotFound(CountError):
    """A series that must exist does not."""


class QueryRejected(CountError):
    """A query is not allowed (sandbox) or not valid; carries DuckDB's reason."""


class QueryTimeout(CountError):
    """A query ran past its time limit and was interrupted."""


class Unavailable(CountError):
    """The node cannot serve this right now (shutting down, storage refusing writes); a retry may work."""


class Unauthenticated(CountError):
    """A request needs credentials it does not carry (an internal route without a valid cluster signature)."""


class AuthenticationRequired(CountError):
    """AUTH_REQUIRED is on and the request carries no access token, or one that is unknown or revoked."""


class PermissionDenied(CountError):
    """The request's access token is valid but lacks `scope`, the one this operation needs."""

    def __init__(self, message: str, *, scope: str):
        super().__init__(message, scope=scope)
        self.scope = scope


class StorageFull(Unavailable):
    """The filesystem holding DATA_DIR has less free space than MIN_FREE_DISK_MB (or none): writes are refused
    until space is freed; reads go on. `free_bytes` is what was left."""

    def __init__(self, message: str, *, path: str, free_bytes: int):
        super().__init__(message, path=path, free_bytes=free_bytes)
        self.path = path
        self.free_bytes = free_bytes


class StorageError(CountError):
    """Disk or file trouble while reading or writing Count's data."""


class CorruptSegment(StorageError):
    """A WAL segment holds bytes that are not a valid record at `offset`."""

    def __init__(self, message: str, *, path: str, offset: int):
        super().__init__(f"{message} ({path} at offset {offset})", path=path, offset=offset)
        self.path = path
        self.offset = offset


class CatalogError(StorageError):
    """The SQLite catalog refused an operation or is not in the shape Count expects."""


class ConfigError(CountError):
    """A setting from the environment is invalid. `variable` names it."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}", variable=variable)
        self.variable = variable
        self.problem = problem
