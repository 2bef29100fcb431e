"""Flight SQL messages in their Any wrapper: round trips, plain SQL is never taken for Flight SQL, and a
message Count does not speak is refused by name."""

from __future__ import annotations

import pytest
from google.protobuf import any_pb2

from countdb.errors import InvalidInput, UnsupportedFormat
from countdb.flight import flightsql
from countdb.flight import flightsql_pb2 as pb

# CommandStatementQuery{query: "SELECT 1"} (field 1) packed in an Any by protobuf's own encoder.
COMMAND = any_pb2.Any(type_url="type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery",
                      value=b"\n\x08SELECT 1").SerializeToString()


def test_a_command_statement_query_yields_its_sql():
    assert flightsql.unpack(COMMAND) == pb.CommandStatementQuery(query="SELECT 1")


@pytest.mark.parametrize("sql", ["SELECT 1", "", "\nSELECT 'ü' AS x", "x" * 300])
def test_a_statement_ticket_round_trips(sql):
    ticket = flightsql.statement_ticket(sql)
    assert flightsql.unpack(ticket).statement_handle == sql.encode()
    assert any_pb2.Any.FromString(ticket).type_url.endswith(".sql.TicketStatementQuery")


@pytest.mark.parametrize("plain", [b"SELECT 1", b"\nSELECT 1", b"\n\x05hello", b"\x0a\xff\xff\xff", b"", b"\x80"])
def test_plain_sql_is_not_flight_sql(plain):
    assert flightsql.unpack(plain) is None


def test_a_message_count_does_not_speak_is_refused_by_name():
    command = any_pb2.Any(type_url=flightsql.TYPE_PREFIX + "CommandStatementSubstraitPlan").SerializeToString()
    with pytest.raises(UnsupportedFormat, match="CommandStatementSubstraitPlan is not supported"):
        flightsql.unpack(command)


def test_a_flight_sql_message_with_a_broken_body_is_invalid_input():
    command = any_pb2.Any(type_url=flightsql.TYPE_PREFIX + "CommandGetTables", value=b"\x0a\x05ab").SerializeToString()
    with pytest.raises(InvalidInput, match="CommandGetTables message is not valid protobuf"):
        flightsql.unpack(command)


def test_packed_messages_unpack_to_equal_messages():
    tables = pb.CommandGetTables(catalog="temp", table_types=["TABLE", "VIEW"], include_schema=True)
    assert flightsql.unpack(flightsql.pack(tables)) == tables
