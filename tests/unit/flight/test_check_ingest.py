"""Bulk ingest (CommandStatementIngest) appends to `points` and refuses every other table or option by name."""

from __future__ import annotations

import pytest

from countdb.errors import InvalidInput, UnsupportedFormat
from countdb.flight import flightsql_pb2 as pb
from countdb.flight.server import check_ingest

Options = pb.CommandStatementIngest.TableDefinitionOptions
APPEND = Options(if_not_exist=Options.TABLE_NOT_EXIST_OPTION_FAIL, if_exists=Options.TABLE_EXISTS_OPTION_APPEND)


@pytest.mark.parametrize("command", [
    pb.CommandStatementIngest(table="points", table_definition_options=APPEND),
    pb.CommandStatementIngest(table="POINTS", catalog="temp", schema="main", table_definition_options=Options(
        if_not_exist=Options.TABLE_NOT_EXIST_OPTION_CREATE, if_exists=Options.TABLE_EXISTS_OPTION_APPEND)),
])
def test_appending_to_points_is_accepted(command):
    check_ingest(command)


@pytest.mark.parametrize("command, error, message", [
    (pb.CommandStatementIngest(table="series", table_definition_options=APPEND), InvalidInput, "`points` table only"),
    (pb.CommandStatementIngest(table="points", catalog="count", table_definition_options=APPEND), InvalidInput,
     "catalog 'temp', not 'count'"),
    (pb.CommandStatementIngest(table="points", schema="public", table_definition_options=APPEND), InvalidInput,
     "schema 'main', not 'public'"),
    (pb.CommandStatementIngest(table="points", temporary=True, table_definition_options=APPEND), UnsupportedFormat,
     "temporary"),
    (pb.CommandStatementIngest(table="points", transaction_id=b"t", table_definition_options=APPEND),
     UnsupportedFormat, "transactions"),
    (pb.CommandStatementIngest(table="points", options={"adbc.x": "1"}, table_definition_options=APPEND),
     UnsupportedFormat, r"options \['adbc.x'\]"),
    (pb.CommandStatementIngest(table="points", table_definition_options=Options(
        if_exists=Options.TABLE_EXISTS_OPTION_REPLACE)), UnsupportedFormat, "cannot be replaced"),
    (pb.CommandStatementIngest(table="points", table_definition_options=Options(
        if_exists=Options.TABLE_EXISTS_OPTION_FAIL)), InvalidInput, "mode 'append'"),
    (pb.CommandStatementIngest(table="points"), InvalidInput, "mode 'append'"),
])
def test_anything_else_is_refused_by_name(command, error, message):
    with pytest.raises(error, match=message):
        check_ingest(command)
