"""Flight SQL messages on the wire: each travels packed in a google.protobuf.Any whose type URL names it
(flightsql_pb2 holds the messages Count speaks).

Invariant: bytes that are not an Any naming a Flight SQL message decode to None, so a plain SQL ticket or
command (Count's own Flight protocol) is never mistaken for Flight SQL; an Any naming a Flight SQL message
Count does not speak raises UnsupportedFormat with its name.
"""

from __future__ import annotations

from google.protobuf import any_pb2, message
from google.protobuf.message import DecodeError

from countdb.errors import InvalidInput, UnsupportedFormat
from countdb.flight import flightsql_pb2 as pb

TYPE_PREFIX = "type.googleapis.com/arrow.flight.protocol.sql."

# Every message Count accepts from a client, by the name in its type URL.
ACCEPTED = {cls.DESCRIPTOR.name: cls for cls in (
    pb.CommandStatementQuery, pb.TicketStatementQuery, pb.CommandPreparedStatementQuery,
    pb.CommandStatementIngest, pb.CommandGetSqlInfo, pb.CommandGetXdbcTypeInfo, pb.CommandGetCatalogs,
    pb.CommandGetDbSchemas, pb.CommandGetTables, pb.CommandGetTableTypes, pb.CommandGetPrimaryKeys,
    pb.CommandGetExportedKeys, pb.CommandGetImportedKeys, pb.CommandGetCrossReference,
    pb.ActionCreatePreparedStatementRequest, pb.ActionClosePreparedStatementRequest,
)}

# Flight SQL messages Count knows it refuses, with the reason.
_REFUSED = {
    "CommandStatementUpdate": "Count's SQL is read-only (one SELECT per statement); write points with bulk ingest",
    "CommandPreparedStatementUpdate": "Count's SQL is read-only (one SELECT per statement), and a prepared query "
                                      "runs with one row of parameters at a time",
    "CommandStatementSubstraitPlan": "Count runs SQL, not Substrait plans",
    "ActionBeginTransactionRequest": "Count has no transactions; every statement stands alone (autocommit)",
    "ActionCancelQueryRequest": "Count does not cancel queries on request; each stops at QUERY_TIMEOUT_SECONDS",
}


def pack(msg: message.Message) -> bytes:
    """`msg` in an Any, serialized: a command, ticket or action result."""
    return any_pb2.Any(type_url=TYPE_PREFIX + msg.DESCRIPTOR.name, value=msg.SerializeToString()).SerializeToString()


def unpack(data: bytes) -> message.Message | None:
    """The Flight SQL message in `data` (an Any), or None if `data` is not one. Raises UnsupportedFormat for a
    Flight SQL message Count does not speak, InvalidInput for one whose body is not valid protobuf."""
    try:
        wrapper = any_pb2.Any.FromString(data)
    except (DecodeError, RuntimeWarning):
        return None
    if not wrapper.type_url.startswith(TYPE_PREFIX):
        return None
    name = wrapper.type_url[len(TYPE_PREFIX):]
    cls = ACCEPTED.get(name)
    if cls is None:
        reason = _REFUSED.get(name, "docs/flight.md lists what is")
        raise UnsupportedFormat(f"Flight SQL {name} is not supported by Count: {reason}")
    try:
        return cls.FromString(wrapper.value)
    except DecodeError:
        raise InvalidInput(f"the Flight SQL {name} message is not valid protobuf", field="command") from None


def statement_ticket(sql: str) -> bytes:
    """A TicketStatementQuery whose statement handle is the SQL itself (Count keeps no statement state)."""
    return pack(pb.TicketStatementQuery(statement_handle=sql.encode()))
