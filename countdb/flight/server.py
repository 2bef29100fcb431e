"""CountFlightServer: Arrow Flight over the same services as HTTP. do_get runs a SQL ticket in the sandbox
and streams the result as record batches; do_put writes Arrow batches through the /insert path;
get_flight_info answers a SQL command (plain, or Flight SQL's CommandStatementQuery) with a ticket for it.

Invariant: errors reach the client as Flight errors carrying Count's message (never a traceback), mapped
in one place, `flight_error`.
"""

from __future__ import annotations

import logging
from typing import Iterator

import orjson
import pyarrow as pa
import pyarrow.flight as flight

from countdb import errors
from countdb.api.services import Services
from countdb.flight import flightsql
from countdb.ingest.parse import arrow_columns
from countdb.query.sql import SqlResult

log = logging.getLogger(__name__)

CLIENT_ERRORS = (errors.InvalidInput, errors.LimitExceeded, errors.UnsupportedFormat, errors.QueryRejected,
                 errors.SeriesNotFound)


def flight_error(error: Exception) -> flight.FlightError:
    """The one mapping from Count's errors to Flight's; extra_info holds `{"error": …}` as JSON."""
    if not isinstance(error, errors.CountError):
        log.error("unexpected error in an Arrow Flight call", exc_info=error)
        return flight.FlightInternalError("internal error; the server log has the details")
    extra = orjson.dumps({"error": error.message})
    if isinstance(error, errors.QueryTimeout):
        return flight.FlightTimedOutError(error.message, extra)
    if isinstance(error, CLIENT_ERRORS):
        return flight.FlightServerError(error.message, extra)
    if isinstance(error, errors.StorageError):
        log.error("storage error in an Arrow Flight call: %s", error)
    return flight.FlightUnavailableError(error.message, extra)


class CountFlightServer(flight.FlightServerBase):
    def __init__(self, location: str, services: Services):
        super().__init__(location)
        self.services = services

    def get_flight_info(self, context, descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        """A command descriptor holding SQL (UTF-8, or a Flight SQL CommandStatementQuery): its result schema
        and one endpoint on this server whose ticket runs it."""
        try:
            if descriptor.descriptor_type != flight.DescriptorType.CMD:
                raise errors.InvalidInput("send a command descriptor holding a SQL statement", field="descriptor")
            flight_sql = flightsql.command_sql(descriptor.command)
            sql = _utf8(descriptor.command if flight_sql is None else flight_sql)
            schema = self.services.sql.schema(sql, keys_as_dictionary=True)
        except Exception as error:  # noqa: BLE001 - every failure becomes a Flight error
            raise flight_error(error) from None
        ticket = sql.encode() if flight_sql is None else flightsql.statement_ticket(sql)
        return flight.FlightInfo(schema, descriptor, [flight.FlightEndpoint(ticket, [])], -1, -1)

    def do_get(self, context, ticket: flight.Ticket) -> flight.FlightDataStream:
        """The ticket is one SQL SELECT (UTF-8, or a ticket from get_flight_info), run like POST /query/sql
        answering Arrow: a `series` column comes dictionary-encoded."""
        try:
            flight_sql = flightsql.ticket_sql(ticket.ticket)
            result = self.services.sql.execute(_utf8(ticket.ticket if flight_sql is None else flight_sql),
                                               keys_as_dictionary=True)
        except Exception as error:  # noqa: BLE001 - every failure becomes a Flight error
            raise flight_error(error) from None
        return flight.GeneratorStream(result.schema, _batches(result))

    def do_put(self, context, descriptor, reader: flight.MetadataRecordBatchReader,
               writer: flight.FlightMetadataWriter) -> None:
        """Batches with the /insert Arrow columns (series, timestamp, value, optional tags), written in groups of
        up to MAX_POINTS_PER_REQUEST; after each group is acknowledged (WAL), `{"points": total}` is sent back
        as metadata. An invalid group stops the stream; the groups before it stay written."""
        try:
            limit = self.services.settings.max_points_per_request
            pending: list[pa.RecordBatch] = []
            total = 0
            for batch in _slices(reader, limit):
                if pending and sum(b.num_rows for b in pending) + batch.num_rows > limit:
                    total += self._write(pending, writer, total)
                    pending = []
                pending.append(batch)
            if pending:
                self._write(pending, writer, total)
        except Exception as error:  # noqa: BLE001 - every failure becomes a Flight error
            raise flight_error(error) from None

    def _write(self, batches: list[pa.RecordBatch], writer: flight.FlightMetadataWriter, before: int) -> int:
        settings = self.services.settings
        points = arrow_columns(pa.Table.from_batches(batches), settings.max_points_per_request)
        written = self.services.sink.write(points)
        writer.write(pa.py_buffer(orjson.dumps({"points": before + written})))
        return written


def _utf8(sql: bytes) -> str:
    try:
        return sql.decode()
    except UnicodeDecodeError:
        raise errors.InvalidInput("the SQL statement must be UTF-8", field="ticket") from None


def _batches(result: SqlResult) -> Iterator[pa.Table]:
    """The result's batches; closes it when the stream ends, fails or the client goes away.

    NOTE: each batch goes as a one-batch Table, which GeneratorStream sends with its dictionaries (a bare
    RecordBatch goes without them); a RecordBatchStream would send them too, but its errors would reach the
    client with a Python traceback and without extra_info."""
    try:
        for batch in result:
            yield pa.Table.from_batches([batch])
    except Exception as error:  # noqa: BLE001 - every failure becomes a Flight error
        raise flight_error(error) from None
    finally:
        result.close()


def _slices(reader: flight.MetadataRecordBatchReader, max_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        for chunk in reader:
            batch = chunk.data
            for offset in range(0, batch.num_rows, max_rows):
                yield batch.slice(offset, max_rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise errors.InvalidInput(f"the Arrow stream is not readable: {error}", field="body") from None
