"""Flight SQL catalog metadata: the tables Count's SQL can read (`points`, `series`), where they live, and the
empty key and type answers, each in the Arrow schema FlightSql.proto gives for its command.

Invariant: the names answered are the ones DuckDB resolves in a user statement: both views are temp views, so
catalog `temp`, schema `main` (`SELECT * FROM temp.main.points` works as well as `FROM points`).
"""

from __future__ import annotations

import re
from typing import Callable

import pyarrow as pa

from countdb.flight import flightsql_pb2 as pb

CATALOG = "temp"
DB_SCHEMA = "main"
TABLE_TYPE = "TABLE"
TABLES = ("points", "series")

CATALOGS_SCHEMA = pa.schema([pa.field("catalog_name", pa.string(), nullable=False)])
DB_SCHEMAS_SCHEMA = pa.schema([pa.field("catalog_name", pa.string()),
                               pa.field("db_schema_name", pa.string(), nullable=False)])
TABLES_SCHEMA = pa.schema([
    pa.field("catalog_name", pa.string()), pa.field("db_schema_name", pa.string()),
    pa.field("table_name", pa.string(), nullable=False), pa.field("table_type", pa.string(), nullable=False),
])
TABLES_WITH_SCHEMA_SCHEMA = TABLES_SCHEMA.append(pa.field("table_schema", pa.binary(), nullable=False))
TABLE_TYPES_SCHEMA = pa.schema([pa.field("table_type", pa.string(), nullable=False)])
PRIMARY_KEYS_SCHEMA = pa.schema([
    pa.field("catalog_name", pa.string()), pa.field("db_schema_name", pa.string()),
    pa.field("table_name", pa.string(), nullable=False), pa.field("column_name", pa.string(), nullable=False),
    pa.field("key_name", pa.string()), pa.field("key_sequence", pa.int32(), nullable=False),
])
FOREIGN_KEYS_SCHEMA = pa.schema([
    pa.field("pk_catalog_name", pa.string()), pa.field("pk_db_schema_name", pa.string()),
    pa.field("pk_table_name", pa.string(), nullable=False), pa.field("pk_column_name", pa.string(), nullable=False),
    pa.field("fk_catalog_name", pa.string()), pa.field("fk_db_schema_name", pa.string()),
    pa.field("fk_table_name", pa.string(), nullable=False), pa.field("fk_column_name", pa.string(), nullable=False),
    pa.field("key_sequence", pa.int32(), nullable=False), pa.field("fk_key_name", pa.string()),
    pa.field("pk_key_name", pa.string()), pa.field("update_rule", pa.uint8(), nullable=False),
    pa.field("delete_rule", pa.uint8(), nullable=False),
])
XDBC_TYPE_INFO_SCHEMA = pa.schema([
    pa.field("type_name", pa.string(), nullable=False), pa.field("data_type", pa.int32(), nullable=False),
    pa.field("column_size", pa.int32()), pa.field("literal_prefix", pa.string()),
    pa.field("literal_suffix", pa.string()),
    pa.field("create_params", pa.list_(pa.field("item", pa.string(), nullable=False))),
    pa.field("nullable", pa.int32(), nullable=False), pa.field("case_sensitive", pa.bool_(), nullable=False),
    pa.field("searchable", pa.int32(), nullable=False), pa.field("unsigned_attribute", pa.bool_()),
    pa.field("fixed_prec_scale", pa.bool_(), nullable=False), pa.field("auto_increment", pa.bool_()),
    pa.field("local_type_name", pa.string()), pa.field("minimum_scale", pa.int32()),
    pa.field("maximum_scale", pa.int32()), pa.field("sql_data_type", pa.int32(), nullable=False),
    pa.field("datetime_subcode", pa.int32()), pa.field("num_prec_radix", pa.int32()),
    pa.field("interval_precision", pa.int32()),
])

# Commands whose answer is always empty: Count's tables have no keys, and its types are DuckDB's (clients
# take column types from the Arrow schemas).
EMPTY_ANSWERS = {
    pb.CommandGetPrimaryKeys: PRIMARY_KEYS_SCHEMA,
    pb.CommandGetExportedKeys: FOREIGN_KEYS_SCHEMA,
    pb.CommandGetImportedKeys: FOREIGN_KEYS_SCHEMA,
    pb.CommandGetCrossReference: FOREIGN_KEYS_SCHEMA,
    pb.CommandGetXdbcTypeInfo: XDBC_TYPE_INFO_SCHEMA,
}


def catalogs() -> pa.Table:
    return pa.table([[CATALOG]], schema=CATALOGS_SCHEMA)


def db_schemas(command: pb.CommandGetDbSchemas) -> pa.Table:
    """The one schema, if it passes the command's catalog and schema-pattern filters."""
    found = _in_scope(command.catalog if command.HasField("catalog") else None,
                      command.db_schema_filter_pattern if command.HasField("db_schema_filter_pattern") else None)
    return pa.table([[CATALOG] * found, [DB_SCHEMA] * found], schema=DB_SCHEMAS_SCHEMA)


def tables(command: pb.CommandGetTables, table_schema: Callable[[str], pa.Schema]) -> pa.Table:
    """The tables passing the command's filters (catalog exact, schema and table LIKE patterns, types); with
    include_schema, each one's Arrow schema (from `table_schema(name)`) serialized as an IPC message."""
    in_scope = _in_scope(command.catalog if command.HasField("catalog") else None,
                         command.db_schema_filter_pattern if command.HasField("db_schema_filter_pattern") else None)
    type_ok = not command.table_types or TABLE_TYPE in command.table_types
    pattern = command.table_name_filter_pattern if command.HasField("table_name_filter_pattern") else None
    names = [name for name in TABLES if in_scope and type_ok and like(name, pattern)]
    columns = [[CATALOG] * len(names), [DB_SCHEMA] * len(names), names, [TABLE_TYPE] * len(names)]
    if not command.include_schema:
        return pa.table(columns, schema=TABLES_SCHEMA)
    schemas = [table_schema(name).serialize().to_pybytes() for name in names]
    return pa.table([*columns, schemas], schema=TABLES_WITH_SCHEMA_SCHEMA)


def table_types() -> pa.Table:
    return pa.table([[TABLE_TYPE]], schema=TABLE_TYPES_SCHEMA)


def like(value: str, pattern: str | None) -> bool:
    """SQL LIKE as Flight SQL filters use it: `%` any run, `_` any one character, `\\` escapes; None matches all."""
    if pattern is None:
        return True
    regex = "".join(".*" if token == "%" else "." if token == "_" else re.escape(token[-1])
                    for token in re.findall(r"\\.|.", pattern, re.DOTALL))
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _in_scope(catalog: str | None, schema_pattern: str | None) -> bool:
    return (catalog is None or catalog == CATALOG) and like(DB_SCHEMA, schema_pattern)
