"""Arrow Flight beside real gunicorn: do_get runs SQL tickets in the sandbox, do_put writes through the
/insert path, and the Flight process stops with count-server (SIGTERM or kill -9) without losing an
acknowledged point."""

from __future__ import annotations

import os
import signal
import socket
import time

import orjson
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from support.waiting import wait_for

T0 = 1_700_000_000_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(count_server, data_dir=None, **env):
    port = free_port()
    node = count_server(data_dir=data_dir, FLIGHT_PORT=port, **env)
    return node, flight.connect(f"grpc://127.0.0.1:{port}")


def put(client, table: pa.Table) -> list[dict]:
    """do_put `table`; returns the acknowledgements the server sent back."""
    writer, acks = client.do_put(flight.FlightDescriptor.for_path("points"), table.schema)
    writer.write_table(table)
    writer.done_writing()
    answers = []
    while (ack := acks.read()) is not None:
        answers.append(orjson.loads(ack.to_pybytes()))
    writer.close()
    return answers


def points_table(count: int, series: str = "flight.put", start_ms: int = T0) -> pa.Table:
    return pa.table({"series": [series] * count, "timestamp": pa.array(range(start_ms, start_ms + count), pa.int64()),
                     "value": pa.array([float(i) for i in range(count)])})


def flight_pid(node) -> int:
    pid = node.helper_pid("flight")
    assert pid is not None, "no Flight process under the master"
    return pid


@pytest.fixture(scope="module")
def served(count_server):
    return start(count_server, WORKERS=1, MAX_POINTS_PER_REQUEST=1000, QUERY_MAX_ROWS=5000)


def test_do_put_writes_points_the_http_api_and_sql_then_read(served):
    node, client = served
    assert put(client, points_table(2500)) == [{"points": 1000}, {"points": 2000}, {"points": 2500}]
    got = node.get("/query/aggregated/flight.put", params={"start": T0, "end": T0 + 9999, "aggregation": "count"})
    assert got.json() == 2500
    table = client.do_get(flight.Ticket(b"SELECT count(*) AS n, sum(value) AS total FROM points "
                                        b"WHERE series = 'flight.put'")).read_all()
    assert table.to_pylist() == [{"n": 2500, "total": float(sum(range(2500)))}]


def test_do_put_takes_tags_and_timestamps(served):
    node, client = served
    table = pa.table({"series": ["flight.tagged"] * 2,
                      "tags": pa.array([[("host", "a")], [("host", "b")]], pa.map_(pa.string(), pa.string())),
                      "timestamp": pa.array([T0, T0 + 1], pa.timestamp("ms")), "value": [1.0, 2.0]})
    assert put(client, table) == [{"points": 2}]
    answer = client.do_get(flight.Ticket(b"SELECT tags['host'] AS host, value FROM points "
                                         b"WHERE name = 'flight.tagged' ORDER BY ts")).read_all()
    assert answer.to_pylist() == [{"host": "a", "value": 1.0}, {"host": "b", "value": 2.0}]


def test_do_get_streams_record_batches_with_the_sql_types(served):
    _, client = served
    reader = client.do_get(flight.Ticket(b"SELECT series, ts, value FROM points WHERE series = 'flight.put' "
                                         b"ORDER BY ts"))
    assert reader.schema.types == [pa.dictionary(pa.int32(), pa.string()), pa.timestamp("us"), pa.float64()]
    table = reader.read_all()
    assert table.num_rows == 2500 and table["value"][2499].as_py() == 2499.0


@pytest.mark.parametrize("ticket, kind, message", [
    (b"SELEC 1", flight.FlightServerError, "Parser Error"),
    (b"DROP VIEW points", flight.FlightServerError, "only queries"),
    (b"SELECT * FROM read_csv('/etc/passwd')", flight.FlightServerError, "Permission Error"),
    (b"SELECT * FROM range(5001)", flight.FlightServerError, "QUERY_MAX_ROWS"),
    (b"\xff", flight.FlightServerError, "UTF-8"),
])
def test_do_get_errors_carry_the_reason_and_no_traceback(served, ticket, kind, message):
    _, client = served
    with pytest.raises(kind) as caught:
        client.do_get(flight.Ticket(ticket)).read_all()
    assert message in str(caught.value) and "Traceback" not in str(caught.value)
    assert message in orjson.loads(caught.value.extra_info)["error"]


@pytest.mark.parametrize("table, message", [
    (pa.table({"series": ["x"], "value": [1.0]}), "lacks column 'timestamp'"),
    (pa.table({"series": ["x"], "timestamp": [T0], "value": [float("nan")]}), "finite"),
    (pa.table({"series": [""], "timestamp": [T0], "value": [1.0]}), "non-empty"),
])
def test_do_put_refuses_what_insert_refuses(served, table, message):
    _, client = served
    with pytest.raises(flight.FlightServerError) as caught:
        put(client, table)
    assert message in str(caught.value)


def test_flight_process_stops_with_sigterm_and_its_points_are_flushed(count_server):
    node, client = start(count_server, WORKERS=1, MEMORY_BUFFER_SIZE=100000, FLUSH_INTERVAL_SECONDS=300)
    pid = flight_pid(node)
    assert put(client, points_table(300, "flight.sigterm")) == [{"points": 300}]
    assert node.stop() == 0
    assert not os.path.exists(f"/proc/{pid}")
    blocks = list((node.data_dir / "time_blocks").glob("*/*.parquet"))
    assert blocks and not [p for p in (node.data_dir / "wal").rglob("*.wal")]


def test_kill_9_of_the_master_alone_stops_the_flight_process(count_server):
    node, _ = start(count_server, WORKERS=1)
    pid = flight_pid(node)
    os.kill(node.proc.pid, signal.SIGKILL)
    node.proc.wait(10)
    deadline = time.monotonic() + 20
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}"), "the Flight process outlived its master"


def test_points_acknowledged_by_do_put_survive_kill_9_of_every_process(count_server):
    node, client = start(count_server, WORKERS=1, MEMORY_BUFFER_SIZE=100000, FLUSH_INTERVAL_SECONDS=300)
    assert put(client, points_table(400, "flight.kill")) == [{"points": 400}]
    node.kill_all()
    node, _ = start(count_server, data_dir=node.data_dir, WORKERS=1)
    got = node.get("/query/aggregated/flight.kill", params={"start": T0, "end": T0 + 999, "aggregation": "count"})
    assert got.json() == 400
    node.stop()


def test_a_flight_process_killed_by_9_is_restarted_on_its_port_and_loses_nothing(count_server):
    node, client = start(count_server, WORKERS=1, MEMORY_BUFFER_SIZE=100000, FLUSH_INTERVAL_SECONDS=300)
    assert put(client, points_table(200, "flight.restart")) == [{"points": 200}]
    killed = flight_pid(node)
    os.kill(killed, signal.SIGKILL)
    assert wait_for(lambda: _restarted_flight_pid(node, killed), 30), node.log_tail()
    again = flight.connect(f"grpc://127.0.0.1:{node.env['FLIGHT_PORT']}")
    assert wait_for(lambda: _answers(again), 30), node.log_tail()
    assert put(again, points_table(100, "flight.restart", T0 + 200)) == [{"points": 100}]
    got = node.get("/query/aggregated/flight.restart", params={"start": T0, "end": T0 + 999, "aggregation": "count"})
    assert got.json() == 300
    assert f"the Arrow Flight process {killed} exited" in node.log_text()
    node.stop()


def _restarted_flight_pid(node, killed: int) -> bool:
    return node.helper_pid("flight") not in (None, killed)


def _answers(client) -> bool:
    try:
        return client.do_get(flight.Ticket(b"SELECT 1 AS one")).read_all().to_pylist() == [{"one": 1}]
    except flight.FlightError:
        return False


def test_get_flight_info_answers_the_schema_and_a_ticket_that_runs_the_sql(served):
    _, client = served
    info = client.get_flight_info(flight.FlightDescriptor.for_command(
        b"SELECT count(*) AS n FROM points WHERE series = 'flight.put'"))
    assert info.schema.names == ["n"] and len(info.endpoints) == 1
    assert client.do_get(info.endpoints[0].ticket).read_all().to_pylist() == [{"n": 2500}]


def test_the_adbc_flight_sql_driver_runs_queries(served):
    dbapi = pytest.importorskip("adbc_driver_flightsql.dbapi")
    node, client = served
    location = f"grpc://127.0.0.1:{node.env['FLIGHT_PORT']}"
    with dbapi.connect(location, autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT tags['host'] AS host, value FROM points WHERE name = 'flight.tagged' ORDER BY ts")
        assert cursor.fetch_arrow_table().to_pylist() == [{"host": "a", "value": 1.0}, {"host": "b", "value": 2.0}]
        cursor.execute("SELECT count(*) FROM points WHERE series = 'flight.put'")
        assert cursor.fetchall() == [(2500,)]
        with pytest.raises(dbapi.Error, match="Permission Error"):
            cursor.execute("SELECT * FROM read_text('/etc/passwd')")


def test_count_server_refuses_to_start_when_another_flight_server_holds_the_port(count_server):
    port = free_port()
    other = flight.FlightServerBase(f"grpc://127.0.0.1:{port}")  # gRPC binds with SO_REUSEPORT
    try:
        with pytest.raises(RuntimeError, match=f"FLIGHT_PORT {port} on 127.0.0.1 is not free"):
            count_server(FLIGHT_PORT=port, WORKERS=1)
    finally:
        other.shutdown()
