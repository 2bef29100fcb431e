"""Flight SQL for the standard clients, against real gunicorn and its Flight process: the real ADBC Flight SQL
driver connects, runs parameterized queries (bound by DuckDB, never spliced), lists objects at every depth,
reads table schemas and server info, bulk-ingests into `points`, streams a large result, and gets clear errors;
the key and type commands answer empty results with the protocol's schemas."""

from __future__ import annotations

import socket

import orjson
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from google.protobuf import any_pb2

import countdb
from countdb.flight import flightsql, metadata
from countdb.flight import flightsql_pb2 as pb

dbapi = pytest.importorskip("adbc_driver_flightsql.dbapi")

T0 = 1_700_000_000_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def node(count_server):
    port = free_port()
    served = count_server(FLIGHT_PORT=port, WORKERS=1, MAX_POINTS_PER_REQUEST=10_000, QUERY_MAX_ROWS=1_000_000)
    with dbapi.connect(f"grpc://127.0.0.1:{port}", autocommit=True) as connection, connection.cursor() as cursor:
        cursor.adbc_ingest("points", pa.table({
            "series": ["sql.cpu"] * 4,
            "tags": pa.array([[("host", "a")], [("host", "a")], [("host", "b")], [("host", "it's")]],
                             pa.map_(pa.string(), pa.string())),
            "timestamp": pa.array([T0, T0 + 1000, T0 + 2000, T0 + 3000], pa.timestamp("ms")),
            "value": [1.0, 2.0, 3.0, 4.0]}), mode="append")
    return served


@pytest.fixture
def connection(node):
    with dbapi.connect(f"grpc://127.0.0.1:{node.env['FLIGHT_PORT']}", autocommit=True) as opened:
        yield opened


@pytest.fixture
def client(node):
    return flight.connect(f"grpc://127.0.0.1:{node.env['FLIGHT_PORT']}")


def rows(connection, sql: str, parameters=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, parameters=parameters)
        return cursor.fetchall()


def test_adbc_get_info_names_count_and_its_version(connection):
    info = connection.adbc_get_info()
    assert info["vendor_name"] == "Count" and info["vendor_version"] == countdb.__version__
    assert info["vendor_arrow_version"] == pa.__version__


@pytest.mark.parametrize("sql, parameters, expected", [
    ("SELECT tags['host'] AS host FROM points WHERE name = 'sql.cpu' AND value > ? ORDER BY ts", (2.0,),
     [("b",), ("it's",)]),
    ("SELECT count(*) FROM points WHERE name = ? AND value BETWEEN ? AND ?", ("sql.cpu", 2, 3), [(2,)]),
    ("SELECT value FROM points WHERE tags['host'] = ?", ("it's",), [(4.0,)]),
    # a value that would change the statement if it were spliced into the text matches nothing
    ("SELECT count(*) FROM points WHERE tags['host'] = ?", ("a' OR '1'='1",), [(0,)]),
    ("SELECT $2 || $1 AS joined", ("b", "a"), [("ab",)]),
])
def test_parameterized_queries_are_bound_by_duckdb(connection, sql, parameters, expected):
    assert rows(connection, sql, parameters) == expected


def test_a_prepared_statement_runs_again_with_new_parameters(connection):
    with connection.cursor() as cursor:
        sql = "SELECT count(*) FROM points WHERE name = 'sql.cpu' AND value > ?"
        answers = []
        for threshold in (0.0, 2.5, 10.0):
            cursor.execute(sql, parameters=(threshold,))
            answers.append(cursor.fetchone()[0])
    assert answers == [4, 2, 0]


@pytest.mark.parametrize("depth, expected", [
    ("catalogs", [{"catalog_name": "temp", "catalog_db_schemas": None}]),
    ("db_schemas", [{"catalog_name": "temp", "catalog_db_schemas": [{"db_schema_name": "main",
                                                                     "db_schema_tables": None}]}]),
])
def test_adbc_get_objects_lists_catalogs_and_schemas(connection, depth, expected):
    assert connection.adbc_get_objects(depth=depth).read_all().to_pylist() == expected


def objects_tables(connection, **filters) -> dict[str, list | None]:
    catalogs = connection.adbc_get_objects(**filters).read_all().to_pylist()
    return {table["table_name"]: (None if table["table_columns"] is None
                                  else [column["column_name"] for column in table["table_columns"]])
            for catalog in catalogs for schema in catalog["catalog_db_schemas"] or []
            for table in schema["db_schema_tables"] or []}


@pytest.mark.parametrize("filters, expected", [
    ({"depth": "tables"}, {"points": None, "series": None}),
    ({"depth": "columns"}, {"points": ["series", "name", "tags", "ts", "value"],
                            "series": ["key", "name", "tags", "first_ts", "last_ts"]}),
    ({"depth": "all", "table_name_filter": "po%"}, {"points": ["series", "name", "tags", "ts", "value"]}),
    ({"depth": "tables", "catalog_filter": "temp", "db_schema_filter": "ma_n", "table_name_filter": "s_ries"},
     {"series": None}),
    ({"depth": "tables", "table_types_filter": ["VIEW"]}, {}),
    ({"depth": "all", "catalog_filter": "elsewhere"}, {}),
])
def test_adbc_get_objects_lists_tables_and_columns_with_filters(connection, filters, expected):
    assert objects_tables(connection, **filters) == expected


def test_adbc_get_table_schema_is_the_schema_a_query_answers(connection):
    schema = connection.adbc_get_table_schema("points")
    assert schema.names == ["series", "name", "tags", "ts", "value"]
    assert schema.field("ts").type == pa.timestamp("us") and schema.field("value").type == pa.float64()
    assert connection.adbc_get_table_schema("series", catalog_filter="temp", db_schema_filter="main").names == [
        "key", "name", "tags", "first_ts", "last_ts"]
    assert connection.adbc_get_table_types() == ["TABLE"]


def test_adbc_ingest_appends_points_the_http_api_and_sql_then_read(node, connection):
    count = 25_000  # three write groups of MAX_POINTS_PER_REQUEST
    table = pa.table({"series": ["sql.ingest"] * count, "timestamp": pa.array(range(T0, T0 + count), pa.int64()),
                      "value": pa.array([float(i) for i in range(count)])})
    with connection.cursor() as cursor:
        assert cursor.adbc_ingest("points", table, mode="append") == count
        assert cursor.adbc_ingest("points", table.slice(0, 10), mode="create_append") == 10
    got = node.get("/query/aggregated/sql.ingest", params={"start": T0, "end": T0 + count, "aggregation": "count"})
    assert got.json() == count
    assert rows(connection, "SELECT count(*), sum(value) FROM points WHERE series = ?", ("sql.ingest",)) == [
        (count, float(sum(range(count))))]


@pytest.mark.parametrize("table_name, mode, data, message", [
    ("points", "create", None, "mode 'append'"),
    ("points", "replace", None, "cannot be replaced"),
    ("metrics", "append", None, "`points` table only"),
    ("points", "append", pa.table({"series": ["x"], "value": [1.0]}), "lacks column 'timestamp'"),
    ("points", "append", pa.table({"series": ["x"], "timestamp": [T0], "value": [float("nan")]}), "finite"),
])
def test_adbc_ingest_refuses_what_it_cannot_do_by_name(connection, table_name, mode, data, message):
    data = data if data is not None else pa.table({"series": ["sql.refused"], "timestamp": [T0], "value": [1.0]})
    with connection.cursor() as cursor, pytest.raises(dbapi.Error, match=message):
        cursor.adbc_ingest(table_name, data, mode=mode)
    assert rows(connection, "SELECT count(*) FROM points WHERE series IN ('x', 'sql.refused')") == [(0,)]


def test_a_large_result_streams_in_many_batches(connection):
    with connection.cursor() as cursor:
        cursor.execute("SELECT i, i * ? AS doubled FROM range(?) t(i)", parameters=(2, 600_000))
        reader = cursor.fetch_record_batch()
        batches = list(reader)
    assert len(batches) > 1 and sum(batch.num_rows for batch in batches) == 600_000
    doubled = pa.Table.from_batches(batches)["doubled"]
    assert pa.compute.sum(doubled).as_py() == 2 * sum(range(600_000))


@pytest.mark.parametrize("sql, parameters, message", [
    ("SELEC 1", None, "Parser Error"),
    ("SELECT * FROM points WHERE value > ?", ("high",), "Conversion Error|Could not convert"),
    ("SELECT * FROM nowhere WHERE value > ?", (1,), "nowhere"),
    ("DROP VIEW points", None, "only queries"),
    ("SELECT * FROM read_text('/etc/passwd') WHERE ? ", (True,), "Permission Error"),
    ("SELECT * FROM range(2000000)", None, "QUERY_MAX_ROWS"),
])
def test_errors_name_their_cause_and_the_connection_goes_on(connection, sql, parameters, message):
    with connection.cursor() as cursor:
        with pytest.raises(dbapi.Error, match=message) as caught:
            cursor.execute(sql, parameters=parameters)
            cursor.fetchall()
        assert "Traceback" not in str(caught.value)
        cursor.execute("SELECT 1 AS still")
        assert cursor.fetchall() == [(1,)]


def test_executemany_is_refused_clearly(connection):
    with connection.cursor() as cursor, pytest.raises(dbapi.Error, match="one row of parameters at a time"):
        cursor.executemany("SELECT ? AS x", [(1,), (2,)])
        cursor.fetchall()


def command(message) -> flight.FlightDescriptor:
    return flight.FlightDescriptor.for_command(flightsql.pack(message))


@pytest.mark.parametrize("message, schema", [
    (pb.CommandGetPrimaryKeys(table="points"), metadata.PRIMARY_KEYS_SCHEMA),
    (pb.CommandGetExportedKeys(table="points"), metadata.FOREIGN_KEYS_SCHEMA),
    (pb.CommandGetImportedKeys(table="points"), metadata.FOREIGN_KEYS_SCHEMA),
    (pb.CommandGetCrossReference(pk_table="series", fk_table="points"), metadata.FOREIGN_KEYS_SCHEMA),
    (pb.CommandGetXdbcTypeInfo(), metadata.XDBC_TYPE_INFO_SCHEMA),
])
def test_key_and_type_commands_answer_empty_results_with_the_protocol_schemas(client, message, schema):
    info = client.get_flight_info(command(message))
    assert info.schema == schema and client.get_schema(command(message)).schema == schema
    answer = client.do_get(info.endpoints[0].ticket).read_all()
    assert answer.schema == schema and answer.num_rows == 0


def test_get_catalogs_and_sql_info_through_the_flight_client(client):
    info = client.get_flight_info(command(pb.CommandGetCatalogs()))
    assert client.do_get(info.endpoints[0].ticket).read_all().to_pylist() == [{"catalog_name": "temp"}]
    info = client.get_flight_info(command(pb.CommandGetSqlInfo(info=[0, 504])))
    assert client.do_get(info.endpoints[0].ticket).read_all().to_pylist() == [
        {"info_name": 0, "value": "Count"}, {"info_name": 504, "value": '"'}]


def prepare(client, sql: str) -> pb.ActionCreatePreparedStatementResult:
    action = flight.Action("CreatePreparedStatement",
                           flightsql.pack(pb.ActionCreatePreparedStatementRequest(query=sql)))
    body = next(iter(client.do_action(action))).body.to_pybytes()
    return pb.ActionCreatePreparedStatementResult.FromString(any_pb2.Any.FromString(body).value)


def test_a_closed_prepared_statement_is_gone(client):
    prepared = prepare(client, "SELECT 7 AS seven")
    assert pa.ipc.read_schema(pa.py_buffer(prepared.dataset_schema)).names == ["seven"]
    query = command(pb.CommandPreparedStatementQuery(prepared_statement_handle=prepared.prepared_statement_handle))
    assert client.do_get(client.get_flight_info(query).endpoints[0].ticket).read_all().to_pylist() == [{"seven": 7}]
    close = pb.ActionClosePreparedStatementRequest(prepared_statement_handle=prepared.prepared_statement_handle)
    assert list(client.do_action(flight.Action("ClosePreparedStatement", flightsql.pack(close)))) == []
    with pytest.raises(flight.FlightServerError, match="prepare the statement again") as caught:
        client.get_flight_info(query)
    assert "prepare the statement again" in orjson.loads(caught.value.extra_info)["error"]


def test_preparing_anything_but_a_query_is_refused(client):
    with pytest.raises(flight.FlightServerError, match="only queries"):
        prepare(client, "INSERT INTO points VALUES (1)")


def test_binding_more_than_one_parameter_row_to_a_query_is_refused(client):
    prepared = prepare(client, "SELECT ? AS x")
    query = command(pb.CommandPreparedStatementQuery(prepared_statement_handle=prepared.prepared_statement_handle))
    parameters = pa.table({"p": [1, 2]})
    writer, _ = client.do_put(query, parameters.schema)
    with pytest.raises(flight.FlightServerError, match="exactly one row of parameters"):
        writer.write_table(parameters)
        writer.close()


def test_the_dbapi_and_sqlalchemy_dialect_superset_uses_reflect_and_query(node):
    """flightsql-dbapi: the DB-API 2 driver and SQLAlchemy dialect written for Superset's Flight SQL support."""
    flightsql_dbapi = pytest.importorskip("flightsql")
    sa = pytest.importorskip("sqlalchemy")
    import flightsql.sqlalchemy  # noqa: F401 - registers datafusion+flightsql://

    port = node.env["FLIGHT_PORT"]
    connection = flightsql_dbapi.connect(flightsql_dbapi.FlightSQLClient(host="127.0.0.1", port=port, insecure=True))
    cursor = connection.cursor()
    cursor.execute("SELECT tags['host'] AS host FROM points WHERE name = ? AND value > ? ORDER BY ts", ["sql.cpu", 2.0])
    assert [row[0] for row in cursor.fetchall()] == ["b", "it's"]

    engine = sa.create_engine(f"datafusion+flightsql://127.0.0.1:{port}?insecure=true"
                              "&feature-sqlalchemy-prepared-statements=on")
    inspector = sa.inspect(engine)
    assert inspector.get_schema_names() == ["main"]
    assert inspector.get_table_names(schema="main") == ["points", "series"]
    points = sa.Table("points", sa.MetaData(), autoload_with=engine, schema="main")
    assert [column.name for column in points.columns] == ["series", "name", "tags", "ts", "value"]
    with engine.connect() as session:
        query = sa.select(sa.func.count()).select_from(points).where(points.c.name == "sql.cpu", points.c.value > 2.0)
        assert session.execute(query).scalar() == 2


@pytest.mark.parametrize("action_type, message, reason", [
    ("BeginTransaction", "ActionBeginTransactionRequest", "no transactions"),
    ("CancelQuery", "ActionCancelQueryRequest", "QUERY_TIMEOUT_SECONDS"),
])
def test_actions_count_does_not_take_are_refused_with_their_reason(client, action_type, message, reason):
    body = any_pb2.Any(type_url=flightsql.TYPE_PREFIX + message).SerializeToString()
    with pytest.raises(flight.FlightServerError, match=f"{message} is not supported by Count: .*{reason}"):
        list(client.do_action(flight.Action(action_type, body)))
