"""Flight SQL through the real ADBC driver, standalone (`python -m bench.flight_sql`; not part of the bench run):
a 5 M-row result as a plain statement and as a prepared statement with bound parameters, and the latency of
the metadata calls clients make on connect. Against an in-process CountFlightServer over a fresh data folder.

Invariant: the two query forms are timed in the same run on the same data, so their ratio holds on a busy
machine even when the absolute times do not.
"""

from __future__ import annotations

import pathlib
import statistics
import tempfile
import time

import adbc_driver_flightsql.dbapi as dbapi

from countdb.api.services import Services
from countdb.config import Settings
from countdb.flight.server import CountFlightServer

ROWS = 5_000_000


def median_seconds(run, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    services = Services.open(Settings.for_tests(pathlib.Path(tempfile.mkdtemp()), query_max_rows=2 * ROWS))
    server = CountFlightServer("grpc://127.0.0.1:0", services)
    try:
        with dbapi.connect(f"grpc://127.0.0.1:{server.port}", autocommit=True) as conn, conn.cursor() as cursor:
            def statement() -> None:
                cursor.execute(f"SELECT i, i * 2 AS d FROM range({ROWS}) t(i)")
                assert cursor.fetch_arrow_table().num_rows == ROWS

            def prepared() -> None:
                cursor.execute("SELECT i, i * ? AS d FROM range(?) t(i)", parameters=(2, ROWS))
                assert cursor.fetch_arrow_table().num_rows == ROWS

            plain, bound = median_seconds(statement), median_seconds(prepared)
            print(f"{ROWS} rows x 2 int64: statement {plain:.3f} s ({ROWS / plain / 1e6:.1f} M rows/s), "
                  f"prepared with bound parameters {bound:.3f} s; ratio prepared/statement {bound / plain:.2f}")
            objects = median_seconds(lambda: conn.adbc_get_objects(depth="all").read_all(), 20)
            info = median_seconds(conn.adbc_get_info, 20)
            print(f"adbc_get_objects(depth='all') {objects * 1000:.1f} ms; adbc_get_info {info * 1000:.1f} ms (medians)")
    finally:
        server.shutdown()
        services.close()


if __name__ == "__main__":
    main()
