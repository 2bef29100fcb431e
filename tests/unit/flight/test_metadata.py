"""Flight SQL metadata answers: LIKE filters, the protocol's schemas, serialized table schemas, and GetSqlInfo's
dense union read back value by value."""

from __future__ import annotations

import pyarrow as pa
import pytest

from countdb.flight import flightsql_pb2 as pb
from countdb.flight import metadata, sqlinfo

POINTS = pa.schema([pa.field("series", pa.string()), pa.field("value", pa.float64())])


@pytest.mark.parametrize("value, pattern, matches", [
    ("points", None, True), ("points", "%", True), ("points", "p%", True), ("points", "%ts", True),
    ("points", "p_ints", True), ("points", "P%", False), ("points", "point", False), ("points", "s%", False),
    ("a_b", "a\\_b", True), ("axb", "a\\_b", False), ("a%b", "a\\%b", True), ("axxb", "a\\%b", False),
    ("a.b", "a.b", True), ("axb", "a.b", False), ("", "%", True), ("x", "", False),
])
def test_like_follows_sql_like_with_backslash_escapes(value, pattern, matches):
    assert metadata.like(value, pattern) is matches


def table_names(**command) -> list[str]:
    answer = metadata.tables(pb.CommandGetTables(**command), lambda name: POINTS)
    return answer.column("table_name").to_pylist()


@pytest.mark.parametrize("command, names", [
    ({}, ["points", "series"]),
    ({"table_name_filter_pattern": "p%"}, ["points"]),
    ({"table_name_filter_pattern": "nothing%"}, []),
    ({"catalog": "temp", "db_schema_filter_pattern": "ma_n"}, ["points", "series"]),
    ({"catalog": ""}, []),  # "" asks for tables without a catalog
    ({"catalog": "other"}, []),
    ({"db_schema_filter_pattern": "public"}, []),
    ({"table_types": ["VIEW"]}, []),
    ({"table_types": ["VIEW", "TABLE"]}, ["points", "series"]),
])
def test_get_tables_filters(command, names):
    assert table_names(**command) == names


def test_get_tables_with_schemas_serializes_each_as_an_ipc_message():
    answer = metadata.tables(pb.CommandGetTables(include_schema=True), lambda name: POINTS.append(
        pa.field(name, pa.int8())))
    assert answer.schema == metadata.TABLES_WITH_SCHEMA_SCHEMA
    schemas = [pa.ipc.read_schema(pa.py_buffer(raw)) for raw in answer.column("table_schema").to_pylist()]
    assert [s.names for s in schemas] == [["series", "value", "points"], ["series", "value", "series"]]
    assert metadata.tables(pb.CommandGetTables(), lambda name: POINTS).schema == metadata.TABLES_SCHEMA


@pytest.mark.parametrize("command, found", [
    (pb.CommandGetDbSchemas(), True), (pb.CommandGetDbSchemas(catalog="temp"), True),
    (pb.CommandGetDbSchemas(db_schema_filter_pattern="m%"), True),
    (pb.CommandGetDbSchemas(catalog="count"), False), (pb.CommandGetDbSchemas(db_schema_filter_pattern="x"), False),
])
def test_get_db_schemas_filters(command, found):
    answer = metadata.db_schemas(command)
    assert answer.schema == metadata.DB_SCHEMAS_SCHEMA
    assert answer.to_pylist() == ([{"catalog_name": "temp", "db_schema_name": "main"}] if found else [])


def test_sql_info_answers_each_value_with_its_specified_type():
    answer = sqlinfo.sql_info([], statement_timeout_ms=600_000)
    assert answer.schema == sqlinfo.SCHEMA
    values = dict(zip(answer.column("info_name").to_pylist(), answer.column("value").to_pylist()))
    assert values[0] == "Count" and values[1] and values[2] == pa.__version__
    assert values[4] is True and values[100] == 600_000 and values[504] == '"'
    union = answer.column("value").combine_chunks()
    kinds = {info: union.type[code].name for info, code in zip(answer.column("info_name").to_pylist(),
                                                                 union.type_codes.to_pylist())}
    assert kinds[0] == "string_value" and kinds[4] == "bool_value" and kinds[503] == "int32_bitmask"


def test_sql_info_answers_the_requested_ids_in_order_and_leaves_unknown_ids_out():
    answer = sqlinfo.sql_info([504, 0, 99_999], statement_timeout_ms=1)
    assert answer.to_pylist() == [{"info_name": 0, "value": "Count"}, {"info_name": 504, "value": '"'}]
