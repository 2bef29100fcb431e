"""Ad-hoc SQL: each statement runs in the Sandbox over two views of one fresh snapshot,
`points(series, name, tags, ts, value)` and `series(key, name, tags, first_ts, last_ts)`.

Invariant: `points` is visible_points() of the whole snapshot (stored and unflushed points, last write wins,
shadowed points gone), so SQL sees exactly the points /query/range sees.
"""

from __future__ import annotations

import re
import threading
from typing import Callable, Iterator

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from countdb.catalog.blocks import series_extents
from countdb.catalog.db import connect, data_version
from countdb.model import RemotePoints
from countdb.obs import metrics
from countdb.query import key_dictionary
from countdb.query.engine import QueryEngine, Scope, Snapshot
from countdb.query.sandbox import Run, Sandbox, sql_literal
from countdb.query.series_index import series_of
from countdb.query.sql_split import splits_by_series
from countdb.query.visible import visible_points

SERIES_SCHEMA = pa.schema([
    pa.field("key", pa.string()),
    pa.field("name", pa.string()),
    pa.field("tags", pa.map_(pa.string(), pa.string())),
    pa.field("first_ts", pa.int64()),
    pa.field("last_ts", pa.int64()),
])

# NOTE: `series` groups by key, so DuckDB knows the join below matches at most one row and drops it
# from any statement that uses neither `name` nor `tags`: a full scan then costs what read_parquet costs
# (issue 4: within 1.2x of plain DuckDB).
_SERIES_VIEW = """CREATE TEMP VIEW series AS
    SELECT key, any_value(name) AS name, any_value(tags) AS tags,
           make_timestamp_ms(min(first_ts)) AS first_ts, make_timestamp_ms(max(last_ts)) AS last_ts
    FROM (SELECT * FROM count_catalog_series UNION ALL SELECT * FROM count_unflushed_series)
    GROUP BY key"""
_POINTS_VIEW = """CREATE TEMP VIEW points AS
    SELECT p.series, s.name, s.tags, p.ts, p.value
    FROM {visible} p LEFT JOIN series s ON s.key = p.series"""


class SqlResult:
    """A running statement: its Arrow schema and batches. Close it (or use `with`) to free the cursor."""

    def __init__(self, run: Run, schema: pa.Schema, batches: Iterator[pa.RecordBatch]):
        self._run = run
        self.schema = schema
        self._batches = batches

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self._batches

    def close(self) -> None:
        self._run.close()

    def __enter__(self) -> "SqlResult":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


PeerAnswers = Callable[[], "list[pa.Table] | None"]
"""Collects the other cluster nodes' answers to a split statement; None when one of them can't take part."""


class SqlService:
    """User SQL over one worker's QueryEngine snapshots. Thread-safe."""

    def __init__(self, engine: QueryEngine, sandbox: Sandbox,
                 remote_points: Callable[[], RemotePoints | None] = lambda: None,
                 split: Callable[[str, list | None], PeerAnswers | None] | None = None):
        """`remote_points()`: the points of the series other cluster nodes answer for (None when not clustered).
        `split(sql, params)`: asks the other nodes to run a statement that splits by series (sql_split.py) over
        the series each answers for, and returns how to collect their answers, or None when it can't now
        (membership changing); None on a single node. Such a statement runs here over this node's own points,
        then the answers are appended: no point leaves its node (issue 12)."""
        self.engine = engine
        self.sandbox = sandbox
        self.remote_points = remote_points
        self.split = split
        self._catalog = connect(engine.datadir.catalog_path)
        self._catalog_lock = threading.Lock()
        self._catalog_version = -1
        self._catalog_series = SERIES_SCHEMA.empty_table()

    def execute(self, sql: str, keys_as_dictionary: bool = False, params: list | None = None) -> SqlResult:
        """Start `sql` (one SELECT); raises QueryRejected with DuckDB's reason, QueryTimeout, LimitExceeded.
        With `keys_as_dictionary`, a `series` column comes as dictionary<int32, string> (query/key_dictionary.py).
        `params` are bound by DuckDB to the statement's placeholders, never spliced into its text."""
        self.sandbox.check(sql)
        if self.split is not None:
            answers = self.split(sql, params) if self._splits(sql) else None
            result = None if answers is None else self._execute_split(sql, keys_as_dictionary, params, answers)
            metrics.CLUSTER_SQL_STATEMENTS.labels("points" if result is None else "split").inc()
            if result is not None:
                return result
        return self._start(sql, keys_as_dictionary, params, self.engine.snapshot(self.remote_points()))

    def execute_for(self, sql: str, params: list | None, keys: list[str] | None) -> pa.Table:
        """`sql`'s answer over this node's points of the series in `keys` alone, or of every series when None (its
        part of a split statement another node coordinates); raises as execute does."""
        self.sandbox.check(sql)
        run = self.sandbox.start()
        try:
            where = "true"
            if keys is not None:
                run.cursor.register("count_answered_keys", pa.table({"series": pa.array(keys, pa.string())}))
                where = "series IN (SELECT series FROM count_answered_keys)"
            self._create_views(run, self.engine.snapshot(), where)
            schema, batches = run.batches(sql, params=params)
            return pa.Table.from_batches(list(batches), schema)
        finally:
            run.close()

    def _splits(self, sql: str) -> bool:
        cursor = self.engine.cursor()
        try:
            return splits_by_series(cursor, sql)
        finally:
            cursor.close()

    def _execute_split(self, sql: str, keys_as_dictionary: bool, params: list | None,
                       answers: PeerAnswers) -> SqlResult | None:
        """This node's answer over its own points followed by the other nodes'; None when a node could not take
        part or answered in another shape (the caller then reads every point here)."""
        run = self.sandbox.start()
        try:
            schema, batches = self._begin(run, sql, keys_as_dictionary, params, self.engine.snapshot())
            own = pa.Table.from_batches(list(batches), schema)
            others = answers()
            whole = None if others is None else pa.concat_tables([own, *(other.cast(schema) for other in others)])
        except pa.ArrowException:
            whole = None
        except BaseException:
            run.close()
            raise
        if whole is None:
            run.close()
            return None
        if keys_as_dictionary:
            whole = whole.unify_dictionaries()
        return SqlResult(run, schema, run.stream(pa.RecordBatchReader.from_batches(schema, whole.to_batches())))

    def _start(self, sql: str, keys_as_dictionary: bool, params: list | None, snapshot: Snapshot) -> SqlResult:
        run = self.sandbox.start()
        try:
            return SqlResult(run, *self._begin(run, sql, keys_as_dictionary, params, snapshot))
        except BaseException:
            run.close()
            raise

    def _begin(self, run: Run, sql: str, keys_as_dictionary: bool, params: list | None,
               snapshot: Snapshot) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        self._create_views(run, snapshot)
        started = key_dictionary.start(run, sql, params) if keys_as_dictionary else None
        return started or run.batches(sql, params=params)

    def schema(self, sql: str, keys_as_dictionary: bool = False, params: list | None = None) -> pa.Schema:
        """The Arrow schema `sql` would answer with (checked and bound like execute, no rows computed)."""
        self.sandbox.check(sql)
        run = self.sandbox.start()
        try:
            self._create_views(run, self.engine.snapshot())  # the schema needs no other node's points
            schema = run.schema(sql, params)
        finally:
            run.close()
        return key_dictionary.wire_schema(schema) if keys_as_dictionary and key_dictionary.applies(schema) else schema

    def _create_views(self, run: Run, snapshot: Snapshot, where: str = "true") -> None:
        run.cursor.register("count_catalog_series", self._series_from_catalog())
        run.cursor.register("count_unflushed_series", pa.concat_tables(
            [_series_from_unflushed(points) for points in snapshot.series_tables()]))
        run.execute(_SERIES_VIEW)
        params: dict = {}
        visible = visible_points(run.cursor, _whole(snapshot), where, params, timestamps=True)
        run.execute(_POINTS_VIEW.format(visible=inline_params(visible, params)))

    def _series_from_catalog(self) -> pa.Table:
        with self._catalog_lock:
            version = data_version(self._catalog)
            if version != self._catalog_version:
                extents = series_extents(self._catalog)
                self._catalog_series = pa.table([
                    [e.key for e in extents], [e.name for e in extents],
                    [list(orjson.loads(e.tags_json).items()) for e in extents],
                    [e.first_ts for e in extents], [e.last_ts for e in extents],
                ], schema=SERIES_SCHEMA)
                self._catalog_version = version
            return self._catalog_series

    def close(self) -> None:
        self._catalog.close()
        self.sandbox.close()


def _whole(snapshot: Snapshot) -> Scope:
    """Every block and unflushed point of the snapshot, as a Scope."""
    blocks = [block for month in snapshot.blocks_by_month.values() for block in month]
    lows = [block.min_ts for block in blocks]
    highs = [block.max_ts for block in blocks]
    for points in snapshot.series_tables():
        if points.num_rows:
            low, high = (v.as_py() for v in pc.min_max(points["ts"]).values())
            lows.append(low)
            highs.append(high)
    if not lows:
        return Scope([], [], snapshot.unflushed)
    return snapshot.scope(min(lows), max(highs))


def _series_from_unflushed(unflushed: pa.Table) -> pa.Table:
    """One row per series with unflushed points: its name, tags and the extent of those points."""
    return series_of(unflushed).rename_columns(SERIES_SCHEMA.names).cast(SERIES_SCHEMA)


def inline_params(sql: str, params: dict) -> str:
    """`sql` with each $name replaced by its value as a literal: a view cannot hold parameters."""
    return re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)", lambda match: sql_literal(params[match.group(1)]), sql)
