"""InternalAuth: every internal request is signed; a replay is refused except of a write's copy, whose replay
stores nothing new (countdb/api/internal_auth.py REPLAY_HARMLESS)."""

from __future__ import annotations

import falcon
import falcon.testing
import pytest

from countdb.api import errors
from countdb.api.internal_auth import InternalAuth
from countdb.cluster.auth import Verifier, sign

SECRET = "s3cret"


class Stored:
    def on_post(self, req, resp):
        resp.media = {"body": req.context.body.decode()}


@pytest.fixture
def client(tmp_path):
    verifier = Verifier(SECRET, tmp_path / "nonces.sqlite")
    app = falcon.App(middleware=[InternalAuth(verifier, 1 << 20)])
    errors.register(app)
    for route in ("/cluster/write", "/cluster/hint", "/cluster/digest"):
        app.add_route(route, Stored())
    yield falcon.testing.TestClient(app)
    verifier.close()


def post_twice(client, path: str) -> list[int]:
    headers = sign(SECRET, "POST", path, b"points", node=1)
    return [client.simulate_post(path, body=b"points", headers=headers).status_code for _ in range(2)]


def test_a_copy_of_a_write_may_come_twice_and_any_other_internal_request_once(client):
    assert post_twice(client, "/cluster/write") == [200, 200]
    assert post_twice(client, "/cluster/hint") == [200, 401]
    assert post_twice(client, "/cluster/digest") == [200, 401]


def test_a_copy_still_needs_its_signature(client):
    headers = sign(SECRET, "POST", "/cluster/write", b"points", node=1)
    answer = client.simulate_post("/cluster/write", body=b"other points", headers=headers)
    assert answer.status_code == 401 and "bad signature" in answer.json["error"]
