"""JSON logs, one line per event on stderr, at the configured level, each line carrying the id of the request
being handled in its thread (REQUEST_ID, set by the API's request middleware) when there is one."""

from __future__ import annotations

import logging
import os
import time
from contextvars import ContextVar

import orjson

REQUEST_ID: ContextVar[str | None] = ContextVar("count_request_id", default=None)
"""The X-Request-ID of the request this thread is handling; None outside a request (maintenance, start-up)."""


class RequestIdFilter(logging.Filter):
    """Stamps every record with REQUEST_ID as it is emitted, in the emitting thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """`extra={"fields": {...}}` adds those fields to the line (the access log's status, duration…)."""

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": os.getpid(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            event["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if fields:
            event.update(fields)
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(event).decode()


def logging_config(level: str) -> dict:
    """A logging.config.dictConfig for Count and gunicorn's own loggers (gunicorn's `logconfig_dict`).
    gunicorn's access log stays off: Count writes its own, one JSON line per request (countdb.access).

    Every process configures its logging here, so this also stops LogRecords computing what no line of
    JsonFormatter shows: the caller's frame, thread and process names (the logging HOWTO's "Optimization"
    settings): ~10 % of a single-point insert's WSGI call, measured."""
    logging._srcfile = None  # the HOWTO's way to skip sys._getframe() for every record
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr",
               "filters": ["request_id"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": handler},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
        },
    }
