"""CountFlightServer: Arrow Flight and Flight SQL over the same services as HTTP. A query (plain SQL, a Flight SQL
statement or prepared statement) runs in the sandbox and streams record batches; Flight SQL metadata commands
answer from flight/metadata.py and flight/sqlinfo.py; do_put writes Arrow batches through the /insert path
(plain, or Flight SQL bulk ingest into `points`) or binds a prepared statement's parameters.

Invariant: errors reach the client as Flight errors carrying Count's message (never a traceback), mapped
in one place, `flight_error`; user values reach DuckDB only as bound parameters, never in SQL text.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator

import orjson
import pyarrow as pa
import pyarrow.flight as flight

from countdb import errors
from countdb.api.services import Services
from countdb.flight import flightsql, metadata, sqlinfo
from countdb.flight import flightsql_pb2 as pb
from countdb.flight.auth import HandshakeByHeader, TokenAuthFactory, TokenCheck
from countdb.flight.prepared import PreparedStatements
from countdb.ingest.parse import arrow_columns
from countdb.query.sql import SqlResult

log = logging.getLogger(__name__)

CLIENT_ERRORS = (errors.InvalidInput, errors.LimitExceeded, errors.UnsupportedFormat, errors.QueryRejected,
                 errors.SeriesNotFound)
MAX_PREPARED_STATEMENTS = 1000  # per Flight process; one more evicts the least recently used
PREPARED_TTL_SECONDS = 600.0  # a prepared statement unused this long is closed
_TableExists = pb.CommandStatementIngest.TableDefinitionOptions


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
    """With `check_token`, every call needs an access token (flight/auth.py); without, every call is open."""

    def __init__(self, location: str, services: Services, check_token: TokenCheck | None = None):
        if check_token is None:
            super().__init__(location)
        else:
            super().__init__(location, auth_handler=HandshakeByHeader(),
                             middleware={"auth": TokenAuthFactory(check_token)})
        self.services = services
        self.prepared = PreparedStatements(MAX_PREPARED_STATEMENTS, PREPARED_TTL_SECONDS)

    def get_flight_info(self, context, descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        """A command descriptor (UTF-8 SQL, or a Flight SQL query or metadata command): its result schema and
        one endpoint on this server whose ticket answers it."""
        try:
            schema, ticket = self._plan(descriptor)
        except Exception as error:  # noqa: BLE001 - every failure becomes a Flight error
            raise flight_error(error) from None
        return flight.FlightInfo(schema, descriptor, [flight.FlightEndpoint(ticket, [])], -1, -1)

    def get_schema(self, context, descriptor: flight.FlightDescriptor) -> flight.SchemaResult:
        try:
            return flight.SchemaResult(self._plan(descriptor)[0])
        except Exception as error:  # noqa: BLE001 - every failure becomes a Flight error
            raise flight_error(error) from None

    def _plan(self, descriptor: flight.FlightDescriptor) -> tuple[pa.Schema, bytes]:
        if descriptor.descriptor_type != flight.DescriptorType.CMD:
            raise errors.InvalidInput("send a command descriptor holding a SQL statement", field="descriptor")
        command = flightsql.unpack(descriptor.command)
        sql = self.services.sql
        if command is None:
            return sql.schema(_utf8(descriptor.command), keys_as_dictionary=True), descriptor.command
        if isinstance(command, pb.CommandStatementQuery):
            return sql.schema(command.query, keys_as_dictionary=True), flightsql.statement_ticket(command.query)
        if isinstance(command, pb.CommandPreparedStatementQuery):
            statement, params = self.prepared.get(command.prepared_statement_handle)
            return sql.schema(statement, keys_as_dictionary=True, params=params), descriptor.command
        return self._metadata(command).schema, descriptor.command

    def do_get(self, context, ticket: flight.Ticket) -> flight.FlightDataStream:
        """The ticket is one SQL SELECT (UTF-8) or a ticket from get_flight_info; a query runs like
        POST /query/sql answering Arrow (a `series` column comes dictionary-encoded)."""
        try:
            command = flightsql.unpack(ticket.ticket)
            if command is None or isinstance(command, pb.TicketStatementQuery):
                statement = ticket.ticket if command is None else command.statement_handle
                result = self.services.sql.execute(_utf8(statement), keys_as_dictionary=True)
            elif isinstance(command, pb.CommandPreparedStatementQuery):
                statement, params = self.prepared.get(command.prepared_statement_handle)
                result = self.services.sql.execute(statement, keys_as_dictionary=True, params=params)
            else:
                return flight.RecordBatchStream(self._metadata(command))
        except Exception as error:  # noqa: BLE001 - every failure becomes a Flight error
            raise flight_error(error) from None
        return flight.GeneratorStream(result.schema, _batches(result))

    def _metadata(self, command) -> pa.Table:
        """The answer to a Flight SQL metadata command; UnsupportedFormat for any other message."""
        if isinstance(command, pb.CommandGetSqlInfo):
            return sqlinfo.sql_info(list(command.info), int(PREPARED_TTL_SECONDS * 1000))
        if isinstance(command, pb.CommandGetCatalogs):
            return metadata.catalogs()
        if isinstance(command, pb.CommandGetDbSchemas):
            return metadata.db_schemas(command)
        if isinstance(command, pb.CommandGetTables):
            return metadata.tables(command, lambda name: self.services.sql.schema(f"SELECT * FROM {name}"))
        if isinstance(command, pb.CommandGetTableTypes):
            return metadata.table_types()
        if type(command) in metadata.EMPTY_ANSWERS:
            return metadata.EMPTY_ANSWERS[type(command)].empty_table()
        raise errors.UnsupportedFormat(f"Flight SQL {command.DESCRIPTOR.name} is not a query or metadata command")

    def list_actions(self, context) -> list[tuple[str, str]]:
        return [("CreatePreparedStatement", "prepare a SQL SELECT with ? placeholders"),
                ("ClosePreparedStatement", "close a prepared statement")]

    def do_action(self, context, action: flight.Action) -> Iterator[flight.Result]:
        """Flight SQL's CreatePreparedStatement and ClosePreparedStatement."""
        try:
            request = flightsql.unpack(action.body.to_pybytes() if action.body else b"")
            if isinstance(request, pb.ActionCreatePreparedStatementRequest):
                return [flight.Result(self._prepare(request))]
            if isinstance(request, pb.ActionClosePreparedStatementRequest):
                self.prepared.close(request.prepared_statement_handle)
                return []
            raise errors.UnsupportedFormat(f"action {action.type!r} is not supported; Count takes "
                                           "CreatePreparedStatement and ClosePreparedStatement")
        except Exception as error:  # noqa: BLE001 - every failure becomes a Flight error
            raise flight_error(error) from None

    def _prepare(self, request: pb.ActionCreatePreparedStatementRequest) -> bytes:
        """A handle for the statement, which must be one SELECT; its result schema when it has no parameters
        (with parameters DuckDB can type the result only once they are bound)."""
        if request.HasField("transaction_id"):
            raise errors.UnsupportedFormat("Count has no transactions; prepare the statement without one")
        self.services.sql.sandbox.check(request.query)
        try:
            dataset_schema = self.services.sql.schema(request.query, keys_as_dictionary=True).serialize().to_pybytes()
        except errors.QueryRejected:
            dataset_schema = b""
        handle = self.prepared.create(request.query)
        return flightsql.pack(pb.ActionCreatePreparedStatementResult(prepared_statement_handle=handle,
                                                                     dataset_schema=dataset_schema))

    def do_put(self, context, descriptor, reader: flight.MetadataRecordBatchReader,
               writer: flight.FlightMetadataWriter) -> None:
        """Points (the /insert Arrow columns: series, timestamp, value, optional tags), as plain Flight (any
        descriptor that is no Flight SQL command) or Flight SQL bulk ingest into `points`; or one row of
        parameters for a prepared statement."""
        try:
            command = (flightsql.unpack(descriptor.command)
                       if descriptor.descriptor_type == flight.DescriptorType.CMD else None)
            if command is None:
                self._write_points(reader, lambda total: writer.write(pa.py_buffer(orjson.dumps({"points": total}))))
            elif isinstance(command, pb.CommandStatementIngest):
                check_ingest(command)
                total = self._write_points(reader, None)
                writer.write(pa.py_buffer(pb.DoPutUpdateResult(record_count=total).SerializeToString()))
            elif isinstance(command, pb.CommandPreparedStatementQuery):
                self.prepared.bind(command.prepared_statement_handle, _parameter_row(reader))
                writer.write(pa.py_buffer(pb.DoPutPreparedStatementResult(
                    prepared_statement_handle=command.prepared_statement_handle).SerializeToString()))
            else:
                raise errors.UnsupportedFormat(f"Flight SQL {command.DESCRIPTOR.name} takes no data (DoPut); "
                                               "Count answers no updates, only queries and bulk ingest")
        except Exception as error:  # noqa: BLE001 - every failure becomes a Flight error
            raise flight_error(error) from None

    def _write_points(self, reader: flight.MetadataRecordBatchReader, ack: Callable[[int], None] | None) -> int:
        """Write the stream in groups of up to MAX_POINTS_PER_REQUEST; after each group is acknowledged (WAL),
        `ack(points written so far)`. An invalid group stops the stream; the groups before it stay written."""
        limit = self.services.settings.max_points_per_request
        pending: list[pa.RecordBatch] = []
        total = 0
        for batch in _slices(reader, limit):
            if pending and sum(b.num_rows for b in pending) + batch.num_rows > limit:
                total = self._write(pending, total, ack)
                pending = []
            pending.append(batch)
        return self._write(pending, total, ack) if pending else total

    def _write(self, batches: list[pa.RecordBatch], before: int, ack: Callable[[int], None] | None) -> int:
        points = arrow_columns(pa.Table.from_batches(batches), self.services.settings.max_points_per_request)
        total = before + self.services.sink.write(points)
        if ack is not None:
            ack(total)
        return total


def check_ingest(command: pb.CommandStatementIngest) -> None:
    """Bulk ingest appends to Count's `points` table and nothing else; any other table or option is refused
    by name (InvalidInput or UnsupportedFormat) before a point is read."""
    if command.table.lower() != "points":
        raise errors.InvalidInput(f"bulk ingest writes into the `points` table only, not {command.table!r}",
                                  field="table")
    for given, name, field in ((command.catalog, metadata.CATALOG, "catalog"),
                               (command.schema, metadata.DB_SCHEMA, "schema")):
        if command.HasField(field) and given != name:
            raise errors.InvalidInput(f"`points` is in {field} {name!r}, not {given!r}", field=field)
    if command.temporary:
        raise errors.UnsupportedFormat("Count has no temporary tables; ingest into `points` without temporary")
    if command.HasField("transaction_id"):
        raise errors.UnsupportedFormat("Count has no transactions; ingest without one")
    if command.options:
        raise errors.UnsupportedFormat(f"bulk ingest options {sorted(command.options)} are not supported")
    if_exists = command.table_definition_options.if_exists
    if if_exists == _TableExists.TABLE_EXISTS_OPTION_REPLACE:
        raise errors.UnsupportedFormat("`points` cannot be replaced; ingest with mode 'append'")
    if if_exists != _TableExists.TABLE_EXISTS_OPTION_APPEND:
        raise errors.InvalidInput("the `points` table always exists; ingest with mode 'append' (or 'create_append')",
                                  field="table_definition_options")


def _parameter_row(reader: flight.MetadataRecordBatchReader) -> list:
    """The one row of parameters a prepared query is bound to, as Python values in column order."""
    try:
        table = reader.read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise errors.InvalidInput(f"the parameter stream is not readable: {error}", field="parameters") from None
    if table.num_rows != 1:
        raise errors.InvalidInput(f"bind exactly one row of parameters per query execution (got {table.num_rows})",
                                  field="parameters")
    return [column[0].as_py() for column in table.columns]


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
