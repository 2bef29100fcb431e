"""How a refusal reaches the client and the log (countdb/api/errors.py)."""

import logging

import falcon
import falcon.testing
import pytest

from countdb import errors as domain
from countdb.api import errors
from countdb.cluster.members import MinorityError

MINORITY = "this node is in a minority: it reaches 1 of 3 cluster nodes"


class Refusing:
    def __init__(self, error: Exception):
        self.error = error

    def on_post(self, req, resp):
        raise self.error


def client_for(error: Exception, path: str = "/insert") -> falcon.testing.TestClient:
    app = falcon.App()
    errors.register(app)
    app.add_route(path, Refusing(error))
    return falcon.testing.TestClient(app)


@pytest.mark.parametrize("path, body", [("/insert", {"error": MINORITY}),
                                        ("/api/v1/query", {"status": "error", "errorType": "unavailable",
                                                           "error": MINORITY})])
def test_a_503_says_why_in_its_body_and_in_the_log(caplog, path, body):
    """A proxy rests a node that answers 503 (nginx's max_fails): the node's log must say why, not only its
    access line's status; in Count's error shape and in the Prometheus API's alike."""
    with caplog.at_level(logging.WARNING, logger="countdb.api.errors"):
        answer = client_for(MinorityError(MINORITY), path).simulate_post(path)
    assert answer.status_code == 503 and answer.json == body
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("WARNING", f"refused POST {path}: {MINORITY}")]


def test_a_client_error_is_not_logged_as_a_refusal(caplog):
    with caplog.at_level(logging.WARNING, logger="countdb.api.errors"):
        answer = client_for(domain.InvalidInput("value: not a number")).simulate_post("/insert")
    assert answer.status_code == 400 and caplog.records == []
