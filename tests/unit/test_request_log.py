"""The request middleware and the JSON log: every line emitted while a request is handled carries its id, lines
outside requests carry none (Falcon's test client, in-process: the log records are captured directly)."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import falcon
import falcon.testing
import pytest

from countdb.api import errors
from countdb.api.middleware import RequestObserver
from countdb.obs.logging import logging_config

log = logging.getLogger("countdb.test.handler")


class Chatty:
    def on_get(self, req, resp):
        log.warning("working on it")
        resp.media = {"ok": True}

    def on_post(self, req, resp):
        raise RuntimeError("boom")  # an unexpected error: logged with its traceback, answered 500


@pytest.fixture
def captured():
    """Count's logging config, with its stderr handler writing into a buffer."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    config = logging_config("info")
    config["handlers"]["stderr"]["stream"] = stream
    logging.config.dictConfig(config)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def client() -> falcon.testing.TestClient:
    app = falcon.App(middleware=[RequestObserver()])
    errors.register(app)
    app.add_route("/chatty", Chatty())
    return falcon.testing.TestClient(app)


def test_every_line_of_a_request_carries_its_id_and_the_access_line_comes_last(captured):
    result = client().simulate_get("/chatty", headers={"X-Request-ID": "abc-123"})
    assert result.headers["X-Request-ID"] == "abc-123"
    handler_line, access_line = lines(captured)
    assert (handler_line["msg"], handler_line["request_id"]) == ("working on it", "abc-123")
    assert (access_line["logger"], access_line["request_id"], access_line["status"]) == ("countdb.access", "abc-123", 200)


def test_an_unexpected_error_is_logged_under_the_request_id(captured):
    result = client().simulate_post("/chatty", headers={"X-Request-ID": "err-1"})
    assert result.status_code == 500 and "Traceback" not in result.text
    error_line, access_line = lines(captured)
    assert error_line["level"] == "error" and "RuntimeError: boom" in error_line["exc"]
    assert error_line["request_id"] == access_line["request_id"] == "err-1"


def test_lines_outside_a_request_have_no_id(captured):
    client().simulate_get("/chatty")
    log.warning("background work")
    assert "request_id" not in lines(captured)[-1]
