"""The access-token hooks: with a check_token function every Flight call needs a token, given as the basic
password (answered with a bearer header) or as a bearer token; without one, everything stays open. Driven by
pyarrow's Flight client and the real ADBC Flight SQL driver against an in-process CountFlightServer."""

from __future__ import annotations

import pyarrow.flight as flight
import pytest

from countdb.api.services import Services
from countdb.config import Settings
from countdb.flight.server import CountFlightServer

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    opened = Services.open(Settings.for_tests(tmp_path_factory.mktemp("flight-auth")))
    yield opened
    opened.close()


@pytest.fixture
def guarded(services):
    server = CountFlightServer("grpc://127.0.0.1:0", services, check_token=lambda token: token == TOKEN)
    yield f"grpc://127.0.0.1:{server.port}"
    server.shutdown()


def one(client: flight.FlightClient, options: flight.FlightCallOptions | None = None) -> list[dict]:
    return client.do_get(flight.Ticket(b"SELECT 1 AS one"), options).read_all().to_pylist()


def test_basic_credentials_are_answered_with_a_bearer_token_that_then_opens_calls(guarded):
    client = flight.connect(guarded)
    header = client.authenticate_basic_token("anyone", TOKEN)
    assert header == (b"authorization", f"Bearer {TOKEN}".encode())
    assert one(client, flight.FlightCallOptions(headers=[header])) == [{"one": 1}]


@pytest.mark.parametrize("headers", [[], [(b"authorization", b"Bearer wrong")], [(b"authorization", b"Token x")],
                                     [(b"authorization", b"Basic !!!")]])
def test_a_call_without_a_valid_token_is_unauthenticated(guarded, headers):
    with pytest.raises(flight.FlightUnauthenticatedError):
        one(flight.connect(guarded), flight.FlightCallOptions(headers=headers))


def test_a_wrong_basic_password_is_refused(guarded):
    with pytest.raises(flight.FlightUnauthenticatedError, match="not valid"):
        flight.connect(guarded).authenticate_basic_token("anyone", "guess")


def test_the_adbc_driver_logs_in_with_username_and_password(guarded):
    dbapi = pytest.importorskip("adbc_driver_flightsql.dbapi")
    with dbapi.connect(guarded, db_kwargs={"username": "anyone", "password": TOKEN}, autocommit=True) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 41 + ? AS answer", parameters=(1,))
            assert cursor.fetchall() == [(42,)]
    with pytest.raises(dbapi.Error, match="(?i)unauthenticated|not valid"):
        with dbapi.connect(guarded, db_kwargs={"username": "anyone", "password": "guess"}) as connection:
            connection.adbc_get_info()


def test_without_a_token_checker_every_call_is_open(services):
    server = CountFlightServer("grpc://127.0.0.1:0", services)
    try:
        assert one(flight.connect(f"grpc://127.0.0.1:{server.port}")) == [{"one": 1}]
    finally:
        server.shutdown()
