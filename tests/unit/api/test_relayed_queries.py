"""A one-series query an owner answers instead (cluster/reads.py owner_answer): what is passed on to it, and how
its answer goes back to the client."""

import falcon
import falcon.testing

from countdb.api import errors
from countdb.api.resources.query import AggregateQueryResource, RangeQueryResource


class OwnerResponse:
    """What PeerClient.send gives back, streamed (a urllib3 response): a body, with or without a Content-Length."""

    def __init__(self, status: int, content_type: str, body: bytes, length: bool = True):
        self.status = status
        self.headers = {"Content-Type": content_type, **({"Content-Length": str(len(body))} if length else {})}
        self.body = body
        self.closed = self.released = False

    def read(self):
        return self.body

    def stream(self, chunk_size: int):
        yield from (self.body[i:i + 3] for i in range(0, len(self.body), 3))

    def release_conn(self):
        self.released = True

    def close(self):
        self.closed = True


class Reads:
    def __init__(self, answer: OwnerResponse):
        self.answer = answer
        self.asked: list[tuple] = []

    def owner_answer(self, kind, series, params):
        self.asked.append((kind, series, params))
        return self.answer


def client(reads: Reads) -> falcon.testing.TestClient:
    app = falcon.App()
    errors.register(app)
    app.add_route("/query/range/{series:path}", RangeQueryResource(None, reads))
    app.add_route("/query/aggregated/{series:path}", AggregateQueryResource(None, reads))
    return falcon.testing.TestClient(app)


def test_the_owner_gets_the_clients_parameters_with_the_format_negotiated_here_and_no_credentials():
    reads = Reads(OwnerResponse(200, "text/csv", b"timestamp,value\n"))
    answer = client(reads).simulate_get("/query/range/cpu,host=a", headers={"Accept": "text/csv"},
                                        query_string="start=0&end=10&u=me&p=secret-token&step=1m")
    assert answer.status_code == 200 and answer.text == "timestamp,value\n" and reads.answer.released
    assert reads.asked == [("range", "cpu,host=a", {"start": "0", "end": "10", "step": "1m", "format": "csv"})]


def test_the_owners_status_type_and_body_are_the_answer_and_a_streamed_body_is_streamed_on():
    body = b'{"error": "query: out of time"}'
    reads = Reads(OwnerResponse(504, "application/json", body, length=False))
    answer = client(reads).simulate_get("/query/aggregated/s", query_string="start=0&end=10&aggregation=max")
    assert (answer.status_code, answer.headers["Content-Type"], answer.content) == (504, "application/json", body)
    assert "Content-Length" not in answer.headers and reads.answer.closed
    assert reads.asked[0][0] == "aggregated"


def test_parameters_are_checked_here_before_any_owner_is_asked():
    reads = Reads(OwnerResponse(200, "application/json", b"[]"))
    answer = client(reads).simulate_get("/query/range/s", query_string="start=soon&end=10")
    assert answer.status_code == 400 and reads.asked == []
