"""The SQL sandbox against a list of escape attempts: every one is answered 400 with a reason, and
afterwards no file was made, no setting changed, and queries still work."""

from __future__ import annotations

import pytest

T0 = 1_700_000_000_000

# {data} is the server's DATA_DIR, {url} its own HTTP address. Each entry: (attempt, part of the reason).
ESCAPES = [
    # files outside time_blocks/
    ("SELECT * FROM read_csv('/etc/passwd')", "Permission Error"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", "Permission Error"),
    ("SELECT * FROM read_csv(['/etc/hostname', '/etc/passwd'])", "Permission Error"),
    ("SELECT * FROM '/etc/passwd'", "does not exist"),
    ("SELECT * FROM read_text('/etc/passwd')", "Permission Error"),
    ("SELECT * FROM read_blob('/etc/hostname')", "Permission Error"),
    ("SELECT * FROM read_json('/etc/os-release')", "Permission Error"),
    ("SELECT * FROM read_ndjson_objects('/etc/passwd')", "Permission Error"),
    ("SELECT * FROM sniff_csv('/etc/passwd')", "Permission Error"),
    ("SELECT * FROM read_text('/proc/self/environ')", "Permission Error"),
    ("SELECT * FROM parquet_scan('{data}/series_index/catalog.sqlite')", "Permission Error"),
    ("SELECT * FROM read_blob('{data}/series_index/catalog.sqlite')", "Permission Error"),
    ("SELECT * FROM read_blob('{data}/time_blocks/../series_index/catalog.sqlite')", "Permission Error"),
    ("SELECT * FROM read_blob('{data}/wal/*/*.wal')", "Permission Error"),
    ("SELECT * FROM glob('/etc/*')", "Permission Error"),
    ("SELECT * FROM glob('{data}/*')", "Permission Error"),
    ("SELECT * FROM glob('{data}/wal/**')", "Permission Error"),
    ("SELECT * FROM parquet_metadata('/etc/passwd')", "Permission Error"),
    # network
    ("SELECT * FROM read_csv('{url}/health')", "Permission Error"),
    ("SELECT * FROM read_parquet('https://example.com/x.parquet')", "Permission Error"),
    ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", "Permission Error"),
    # writing files, databases
    ("COPY (SELECT 1) TO '{data}/time_blocks/x.csv'", "only queries"),
    ("COPY points TO '/tmp/points.csv'", "only queries"),
    ("COPY points FROM '/etc/passwd'", "only queries"),
    ("EXPORT DATABASE '{data}/time_blocks/export'", "only queries"),
    ("IMPORT DATABASE '/etc'", "only queries"),
    ("ATTACH '{data}/time_blocks/x.duckdb' AS x", "only queries"),
    ("ATTACH ':memory:' AS m", "only queries"),
    ("DETACH memory", "only queries"),
    ("USE temp", "only queries"),
    ("CHECKPOINT", "only queries"),
    ("VACUUM", "only queries"),
    # extensions and settings
    ("INSTALL httpfs", "only queries"),
    ("LOAD httpfs", "only queries"),
    ("SET threads = 1", "only queries"),
    ("SET enable_external_access = true", "only queries"),
    ("RESET lock_configuration", "only queries"),
    ("SET VARIABLE x = 1", "only queries"),
    ("PRAGMA enable_profiling", "only queries"),
    ("PRAGMA version", "only queries"),
    ("CALL pragma_version()", "only queries"),
    ("CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')", "only queries"),
    ("SELECT * FROM duckdb_secrets()", "Permission Error"),
    ("SELECT * FROM duckdb_extensions()", "Permission Error"),
    ("SELECT getenv('HOME')", "Catalog Error"),
    # changing data or the views
    ("CREATE TABLE t AS SELECT 1", "only queries"),
    ("CREATE OR REPLACE TEMP VIEW points AS SELECT 1 AS value", "only queries"),
    ("CREATE MACRO m(x) AS x", "only queries"),
    ("INSERT INTO points VALUES ('a', 'a', MAP {{}}, now(), 1)", "only queries"),
    ("UPDATE points SET value = 0", "only queries"),
    ("DELETE FROM points", "only queries"),
    ("DROP VIEW points", "only queries"),
    ("BEGIN TRANSACTION", "only queries"),
    ("PIVOT points ON name USING sum(value)", "only queries"),
    # smuggling a second statement
    ("SELECT 1; DROP VIEW points", "exactly one SQL statement"),
    ("SELECT 1; SELECT 2", "exactly one SQL statement"),
    ("SELECT * FROM query('COPY (SELECT 1) TO ''/tmp/x.csv''')", "Parser Error"),
    ("SELECT * FROM query_table('duckdb_settings')", "Catalog Error"),
]


@pytest.fixture(scope="module")
def node(server):
    assert server.post("/insert", json={"series": "sandbox.probe", "timestamp": T0, "value": 1.0}).status_code == 201
    return server


WRITE_TARGETS = ["time_blocks/x.csv", "time_blocks/export", "time_blocks/x.duckdb", "/tmp/points.csv", "/tmp/x.csv"]


@pytest.mark.parametrize("attempt, reason", ESCAPES, ids=[attempt[:60] for attempt, _ in ESCAPES])
def test_escape_attempt_is_refused_with_a_reason(node, attempt, reason):
    statement = attempt.format(data=node.data_dir, url=node.url)
    response = node.post("/query/sql", data=statement.encode(), headers={"Content-Type": "text/plain"})
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]
    assert not [target for target in WRITE_TARGETS if (node.data_dir / target).exists()]


def test_after_the_attempts_settings_are_locked_and_points_still_answer(node):
    response = node.post("/query/sql", data=(
        "SELECT current_setting('enable_external_access'), current_setting('lock_configuration'), "
        "current_setting('autoload_known_extensions'), (SELECT count(*) FROM points WHERE series = 'sandbox.probe')"
    ).encode(), headers={"Content-Type": "text/plain"})
    assert response.status_code == 200
    assert response.json()["rows"] == [[False, True, False, 1]]


def test_count_own_blocks_are_readable(count_server):
    node = count_server(WORKERS=1)
    assert node.post("/insert", json={"series": "sandbox.own", "timestamp": T0, "value": 7.0}).status_code == 201
    assert node.stop() == 0
    node = count_server(data_dir=node.data_dir, WORKERS=1)
    statement = f"SELECT series, value FROM read_parquet('{node.data_dir}/time_blocks/*/*.parquet')"
    response = node.post("/query/sql", data=statement.encode(), headers={"Content-Type": "text/plain"})
    assert response.status_code == 200 and response.json()["rows"] == [["sandbox.own", 7.0]]
    node.stop()
