"""The few Flight SQL messages Count speaks (CommandStatementQuery in, TicketStatementQuery out), packed in
google.protobuf.Any and encoded by hand: each is one or two protobuf fields, which spares a generated module.

Invariant: anything that is not one of these messages decodes to None, so a plain SQL ticket or command
(Count's own Flight protocol) is never mistaken for Flight SQL.
"""

from __future__ import annotations

from countdb.errors import UnsupportedFormat

TYPE_PREFIX = "type.googleapis.com/arrow.flight.protocol.sql."
STATEMENT_QUERY = "CommandStatementQuery"
TICKET_STATEMENT_QUERY = "TicketStatementQuery"
_LENGTH_DELIMITED = 2


def encode_any(message_type: str, value: bytes) -> bytes:
    """Any{type_url, value} around an already encoded Flight SQL message."""
    return _field(1, (TYPE_PREFIX + message_type).encode()) + _field(2, value)


def decode_any(data: bytes) -> tuple[str, bytes] | None:
    """(message type, encoded message) if `data` is an Any holding a Flight SQL message, else None."""
    fields = _fields(data)
    type_url = (fields or {}).get(1, b"")
    if not type_url.startswith(TYPE_PREFIX.encode()):
        return None
    return type_url[len(TYPE_PREFIX):].decode(errors="replace"), fields.get(2, b"")


def statement_ticket(sql: str) -> bytes:
    """A TicketStatementQuery whose statement handle is the SQL itself (Count keeps no statement state)."""
    return encode_any(TICKET_STATEMENT_QUERY, _field(1, sql.encode()))


def ticket_sql(ticket: bytes) -> bytes | None:
    """The SQL of a ticket made by statement_ticket(); None if it is not Flight SQL."""
    return _statement(ticket, TICKET_STATEMENT_QUERY)


def command_sql(command: bytes) -> bytes | None:
    """The query of a CommandStatementQuery; None if it is not Flight SQL."""
    return _statement(command, STATEMENT_QUERY)


def _statement(data: bytes, expected: str) -> bytes | None:
    """Field 1 of a Flight SQL message of type `expected`; UnsupportedFormat for any other Flight SQL message."""
    decoded = decode_any(data)
    if decoded is None:
        return None
    message_type, message = decoded
    if message_type != expected:
        raise UnsupportedFormat(f"Flight SQL {message_type} is not supported; Count answers ad-hoc queries "
                                f"({STATEMENT_QUERY}) only")
    return (_fields(message) or {}).get(1, b"")


def _field(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | _LENGTH_DELIMITED) + _varint(len(value)) + value


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(data: bytes) -> dict[int, bytes] | None:
    """Length-delimited fields by number (varint fields are skipped); None if `data` is not protobuf."""
    fields, pos = {}, 0
    try:
        while pos < len(data):
            key, pos = _read_varint(data, pos)
            number, wire_type = key >> 3, key & 7
            if wire_type == 0:
                _, pos = _read_varint(data, pos)
            elif wire_type == _LENGTH_DELIMITED:
                length, pos = _read_varint(data, pos)
                if pos + length > len(data):
                    return None
                fields[number], pos = data[pos:pos + length], pos + length
            else:
                return None
    except IndexError:
        return None
    return fields


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise IndexError("varint too long")
