"""GetSqlInfo: what Count tells Flight SQL clients about itself and its SQL dialect (DuckDB's), by the SqlInfo
ids of FlightSql.proto, as the dense-union table the protocol prescribes.

Invariant: every value has the type its id is specified with (string, bool, int64, int32 bitmask or ordinal,
string list), so a client never misreads one; an id Count does not know is left out, never guessed.
"""

from __future__ import annotations

import pyarrow as pa

import countdb

_STRING, _BOOL, _BIGINT, _INT32, _STRING_LIST, _INT32_MAP = range(6)
VALUE_TYPE = pa.dense_union([
    pa.field("string_value", pa.string()),
    pa.field("bool_value", pa.bool_()),
    pa.field("bigint_value", pa.int64()),
    pa.field("int32_bitmask", pa.int32()),
    pa.field("string_list", pa.list_(pa.field("item", pa.string()))),
    pa.field("int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.field("item", pa.int32())))),
])
SCHEMA = pa.schema([pa.field("info_name", pa.uint32(), nullable=False), pa.field("value", VALUE_TYPE, nullable=False)])

# NOTE: DuckDB folds identifiers, quoted or not, case-insensitively (SqlSupportedCaseSensitivity 1), sorts
# NULLs last (SqlNullOrdering 3), and Count runs each statement on its own: no transactions (issue 15).
def _infos(statement_timeout_ms: int) -> dict[int, tuple[int, object]]:
    return {
        0: (_STRING, "Count"),                   # FLIGHT_SQL_SERVER_NAME
        1: (_STRING, countdb.__version__),       # FLIGHT_SQL_SERVER_VERSION
        2: (_STRING, pa.__version__),            # FLIGHT_SQL_SERVER_ARROW_VERSION
        3: (_BOOL, False),                       # FLIGHT_SQL_SERVER_READ_ONLY: bulk ingest writes points
        4: (_BOOL, True),                        # FLIGHT_SQL_SERVER_SQL
        5: (_BOOL, False),                       # FLIGHT_SQL_SERVER_SUBSTRAIT
        8: (_INT32, 0),                          # FLIGHT_SQL_SERVER_TRANSACTION: none
        9: (_BOOL, False),                       # FLIGHT_SQL_SERVER_CANCEL
        100: (_INT32, statement_timeout_ms),     # FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT (prepared handles)
        101: (_INT32, 0),                        # FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT
        500: (_BOOL, False),                     # SQL_DDL_CATALOG
        501: (_BOOL, False),                     # SQL_DDL_SCHEMA
        502: (_BOOL, False),                     # SQL_DDL_TABLE
        503: (_INT32, 1),                        # SQL_IDENTIFIER_CASE: case-insensitive
        504: (_STRING, '"'),                     # SQL_IDENTIFIER_QUOTE_CHAR
        505: (_INT32, 1),                        # SQL_QUOTED_IDENTIFIER_CASE: case-insensitive
        506: (_BOOL, True),                      # SQL_ALL_TABLES_ARE_SELECTABLE
        507: (_INT32, 3),                        # SQL_NULL_ORDERING: NULLs at the end
        513: (_STRING, "\\"),                    # SQL_SEARCH_STRING_ESCAPE (metadata LIKE patterns)
        514: (_STRING, ""),                      # SQL_EXTRA_NAME_CHARACTERS
        515: (_BOOL, True),                      # SQL_SUPPORTS_COLUMN_ALIASING
        516: (_BOOL, True),                      # SQL_NULL_PLUS_NULL_IS_NULL
        518: (_BOOL, True),                      # SQL_SUPPORTS_TABLE_CORRELATION_NAMES
        519: (_BOOL, False),                     # SQL_SUPPORTS_DIFFERENT_TABLE_CORRELATION_NAMES
        520: (_BOOL, True),                      # SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY
        521: (_BOOL, True),                      # SQL_SUPPORTS_ORDER_BY_UNRELATED
        522: (_INT32, 0b11),                     # SQL_SUPPORTED_GROUP_BY: unrelated, beyond select
        523: (_BOOL, True),                      # SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE
        524: (_BOOL, False),                     # SQL_SUPPORTS_NON_NULLABLE_COLUMNS: no DDL
        525: (_INT32, 0b11),                     # SQL_SUPPORTED_GRAMMAR: minimum, core
        526: (_INT32, 0b11),                     # SQL_ANSI92_SUPPORTED_LEVEL: entry, intermediate
        527: (_BOOL, False),                     # SQL_SUPPORTS_INTEGRITY_ENHANCEMENT_FACILITY
        528: (_INT32, 2),                        # SQL_OUTER_JOINS_SUPPORT_LEVEL: full
        529: (_STRING, "schema"),                # SQL_SCHEMA_TERM
        530: (_STRING, "procedure"),             # SQL_PROCEDURE_TERM
        531: (_STRING, "catalog"),               # SQL_CATALOG_TERM
        532: (_BOOL, True),                      # SQL_CATALOG_AT_START
    }


def sql_info(requested: list[int], statement_timeout_ms: int) -> pa.Table:
    """The rows for `requested` ids (all known ids if empty), in id order; unknown ids are left out."""
    infos = _infos(statement_timeout_ms)
    ids = sorted(infos) if not requested else sorted(set(requested) & infos.keys())
    children: list[list] = [[] for _ in VALUE_TYPE]
    type_ids, offsets = [], []
    for info_id in ids:
        kind, value = infos[info_id]
        type_ids.append(kind)
        offsets.append(len(children[kind]))
        children[kind].append(value)
    arrays = [pa.array(values, type=field.type) for values, field in zip(children, VALUE_TYPE)]
    value = pa.UnionArray.from_dense(pa.array(type_ids, pa.int8()), pa.array(offsets, pa.int32()), arrays,
                                     [field.name for field in VALUE_TYPE])
    return pa.table([pa.array(ids, pa.uint32()), value], schema=SCHEMA)
