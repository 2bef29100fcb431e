"""The hand-encoded Flight SQL messages: round trips, and plain SQL is never taken for Flight SQL."""

from __future__ import annotations

import pytest
from google.protobuf import any_pb2

from countdb.errors import UnsupportedFormat
from countdb.flight import flightsql

# CommandStatementQuery{query: "SELECT 1"} (field 1) packed in an Any by protobuf's own encoder.
COMMAND = any_pb2.Any(type_url="type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery",
                      value=b"\n\x08SELECT 1").SerializeToString()


def test_a_command_statement_query_yields_its_sql():
    assert flightsql.command_sql(COMMAND) == b"SELECT 1"


@pytest.mark.parametrize("sql", ["SELECT 1", "", "\nSELECT 'ü' AS x", "x" * 300])
def test_a_statement_ticket_round_trips(sql):
    ticket = flightsql.statement_ticket(sql)
    assert flightsql.ticket_sql(ticket) == sql.encode()
    assert any_pb2.Any.FromString(ticket).type_url.endswith(".sql.TicketStatementQuery")


@pytest.mark.parametrize("plain", [b"SELECT 1", b"\nSELECT 1", b"\n\x05hello", b"\x0a\xff\xff\xff", b"", b"\x80"])
def test_plain_sql_is_not_flight_sql(plain):
    assert flightsql.command_sql(plain) is None
    assert flightsql.ticket_sql(plain) is None


def test_another_flight_sql_command_is_refused_by_name():
    command = flightsql.encode_any("CommandGetSqlInfo", b"")
    with pytest.raises(UnsupportedFormat, match="CommandGetSqlInfo is not supported"):
        flightsql.command_sql(command)
