"""Every DuckDB connection Count opens spills under DATA_DIR/node_state/duckdb_tmp, never into the working
directory (DuckDB's default `.tmp`), so a read-only root filesystem works; each connection has its own folder."""

from __future__ import annotations

from countdb.api.services import prepare_node
from countdb.catalog.db import connect
from countdb.catalog.migrate import migrate
from countdb.config import Settings
from countdb.datadir import DataDir
from countdb.ingest.flush import Flusher
from countdb.query.engine import QueryEngine


def _temp_directory(connection) -> str:
    return connection.sql("SELECT current_setting('temp_directory')").fetchall()[0][0]


def test_query_and_flush_connections_have_their_own_folder_under_the_data_dir(tmp_path):
    datadir = DataDir(tmp_path / "data").create()
    migrate(datadir.catalog_path)
    engine = QueryEngine(datadir, memory_limit_mb=64)
    flusher = Flusher(datadir, connect(datadir.catalog_path))
    try:
        folders = {_temp_directory(engine.database.connection), _temp_directory(flusher._database.connection)}
        assert len(folders) == 2
        assert all(folder.startswith(str(datadir.duckdb_tmp) + "/") for folder in folders)
    finally:
        engine.close()
        flusher.close()
        flusher.catalog.close()


def test_a_query_that_spills_writes_into_its_folder(tmp_path):
    datadir = DataDir(tmp_path / "data").create()
    migrate(datadir.catalog_path)
    engine = QueryEngine(datadir, memory_limit_mb=20, threads=1)
    try:
        cursor = engine.cursor()
        cursor.execute("SET preserve_insertion_order = false")
        rows = cursor.sql("SELECT * FROM (SELECT random() AS r, range::VARCHAR AS s FROM range(2000000)) "
                          "ORDER BY r").to_arrow_reader(10_000)
        next(iter(rows))  # the sort has run, over its memory limit
        spilled = list((datadir.duckdb_tmp).rglob("*.tmp"))
        assert spilled and all(path.parent.name.startswith("query-") for path in spilled)
        cursor.close()
    finally:
        engine.close()


def test_node_start_removes_spill_folders_left_by_dead_processes(tmp_path):
    settings = Settings.for_tests(tmp_path / "data")
    leftover = DataDir(settings.data_dir).create().duckdb_tmp / "query-99999999"
    leftover.mkdir()
    (leftover / "duckdb_temp_storage-0.tmp").write_bytes(b"x" * 100)
    prepare_node(settings)
    assert not leftover.exists()
