"""Sandbox: the DuckDB database that runs user SQL, locked down before any user statement reaches it.

Invariant: a user statement is exactly one SELECT (or EXPLAIN), runs on a fresh cursor that can read files
only under DATA_DIR/time_blocks/, load no extension and change no setting, and is stopped at the time,
memory and row limits with a typed error (DuckDB's own settings alone make no connection read-only and
have no statement timeout, hence the statement check and the timer).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa

from countdb.errors import CountError, LimitExceeded, QueryRejected, QueryTimeout
from countdb.storage.renewing_duckdb import RenewingDatabase

ALLOWED_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
BATCH_ROWS = 64 * 1024


def _open_locked_down(readable_dir: Path, memory_limit_mb: int, threads: int | None) -> duckdb.DuckDBPyConnection:
    duck = duckdb.connect(config={
        "memory_limit": f"{memory_limit_mb}MB",
        "threads": threads or os.cpu_count() or 1,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
    })
    readable = str(readable_dir.resolve()).rstrip("/") + "/"
    for statement in (
        "SET enable_progress_bar = false",
        "SET parquet_metadata_cache = true",
        "SET python_enable_replacements = false",  # else `FROM name` could scan a Python variable
        # NOTE: no spilling: a temp directory would be one more readable folder, and the memory
        # limit becomes a clear error instead of a disk-filling query (issue 4).
        "SET temp_directory = ''",
        f"SET allowed_directories = [{sql_literal(readable)}]",
        "SET enable_external_access = false",
        "SET lock_configuration = true",
    ):
        duck.execute(statement)
    return duck


class Sandbox:
    """One per process. Thread-safe: every statement gets its own cursor (DuckDB connection)."""

    def __init__(self, readable_dir: Path, memory_limit_mb: int, timeout_seconds: float, max_rows: int,
                 threads: int | None = None):
        self.timeout_seconds = timeout_seconds
        self.max_rows = max_rows
        self.memory_limit_mb = memory_limit_mb
        self.database = RenewingDatabase(lambda: _open_locked_down(readable_dir, memory_limit_mb, threads))

    def check(self, sql: str) -> None:
        """QueryRejected unless `sql` is exactly one SELECT or EXPLAIN statement (DuckDB's parser decides)."""
        cursor = self.database.cursor()
        try:
            statements = cursor.extract_statements(sql)
        except duckdb.Error as error:
            raise QueryRejected(str(error)) from None
        finally:
            cursor.close()
        if len(statements) != 1:
            raise QueryRejected(f"send exactly one SQL statement per request (got {len(statements)})")
        if statements[0].type not in ALLOWED_STATEMENTS:
            raise QueryRejected(f"only queries (SELECT, EXPLAIN) are allowed; got a {statements[0].type.name} "
                                "statement")

    def start(self) -> "Run":
        """A fresh cursor whose time limit starts now; the caller must close() it."""
        return Run(self)

    def close(self) -> None:
        self.database.close()


class Run:
    """One statement's cursor, deadline timer and row count."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self.cursor = sandbox.database.cursor()
        self.timed_out = False
        self._timer = threading.Timer(sandbox.timeout_seconds, self._interrupt)
        self._timer.daemon = True
        self._timer.start()

    def _interrupt(self) -> None:
        self.timed_out = True
        self.cursor.interrupt()

    def execute(self, sql: str) -> None:
        """Run set-up SQL of Count's own (views) on this cursor, under the same limits."""
        with self.errors():
            self.cursor.execute(sql)

    def batches(self, sql: str, projection: str | None = None,
                params: list | None = None) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The statement's schema and a stream of its batches (through `projection`, a SELECT list over the
        statement's columns, if given; `params` bound by DuckDB to its `?`/`$n` placeholders); past
        QUERY_MAX_ROWS the stream raises LimitExceeded. Errors at any point come out as CountErrors."""
        with self.errors():
            relation = self.cursor.sql(sql, params=params)
            if projection is not None:
                relation = relation.project(projection)
            reader = relation.to_arrow_reader(BATCH_ROWS)
        return reader.schema, self.stream(reader)

    def schema(self, sql: str, params: list | None = None) -> pa.Schema:
        """The statement's Arrow schema (with `params` bound, as in batches), without computing its rows."""
        with self.errors():
            return self.cursor.sql(sql, params=params).limit(0).to_arrow_table().schema

    def stream(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        """`reader`'s batches, raising LimitExceeded once they pass QUERY_MAX_ROWS rows."""
        rows, limit = 0, self.sandbox.max_rows
        while True:
            with self.errors():
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
            rows += batch.num_rows
            if rows > limit:
                raise LimitExceeded(f"the result has more than {limit} rows (QUERY_MAX_ROWS); "
                                    "aggregate, filter or add a LIMIT", limit="query_max_rows", maximum=limit)
            yield batch

    def errors(self) -> "_Translate":
        return _Translate(self)

    def close(self) -> None:
        self._timer.cancel()
        self.cursor.close()


class _Translate:
    """Context manager: DuckDB's exceptions (and Arrow's, when raised through a result stream) become
    QueryRejected with DuckDB's reason, QueryTimeout or LimitExceeded."""

    def __init__(self, run: Run):
        self.run = run

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None or isinstance(error, CountError) or not isinstance(error, (duckdb.Error, pa.ArrowException)):
            return False
        message = str(error)
        sandbox = self.run.sandbox
        if self.run.timed_out or isinstance(error, duckdb.InterruptException) or message.startswith("INTERRUPT"):
            raise QueryTimeout(f"the query ran past the {sandbox.timeout_seconds:g} s limit "
                               "(QUERY_TIMEOUT_SECONDS) and was stopped") from None
        if isinstance(error, duckdb.OutOfMemoryException) or message.startswith("Out of Memory"):
            raise LimitExceeded(f"the query needs more than {sandbox.memory_limit_mb} MB (QUERY_MEMORY_LIMIT_MB): "
                                f"{message.splitlines()[0]}", limit="query_memory_limit_mb",
                                maximum=sandbox.memory_limit_mb) from None
        raise QueryRejected(message) from None


def sql_literal(value) -> str:
    """A SQL literal for a str, an int or a list of them (Count's own values, never user input)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, list)):
        raise TypeError(f"no SQL literal for {type(value).__name__}")
    if isinstance(value, list):
        return "[" + ", ".join(sql_literal(item) for item in value) + "]"
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"
