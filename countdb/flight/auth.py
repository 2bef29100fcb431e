"""Access-token hooks for Arrow Flight: a server middleware that reads each call's `authorization` header and
asks one function, `check_token(token) -> bool`, whether it may proceed.

Flight SQL clients (ADBC, JDBC, DBeaver) log in with HTTP basic credentials on their first call (Handshake)
and then send the bearer token the server answers with; here the access token is the basic password (any user
name), and the answer is `Bearer <that token>`. Invariant: with no `check_token` the middleware is not
installed and every call is open, as before access tokens existed.
"""

from __future__ import annotations

import base64
import binascii
from typing import Callable

import pyarrow.flight as flight

TokenCheck = Callable[[str], bool]
HEADER = "authorization"


class TokenAuthFactory(flight.ServerMiddlewareFactory):
    """Rejects (unauthenticated) a call without a valid token: `Bearer <token>`, or `Basic` with the token
    as password, which is answered with the bearer header the client then uses."""

    def __init__(self, check_token: TokenCheck):
        super().__init__()
        self.check_token = check_token

    def start_call(self, info, headers) -> "BearerAnswer | None":
        values = headers.get(HEADER) or headers.get(HEADER.title()) or []
        if not values:
            raise flight.FlightUnauthenticatedError("this Count server needs an access token: send it as the "
                                                    "password (basic auth) or as `authorization: Bearer <token>`")
        scheme, _, credentials = values[0].partition(" ")
        if scheme.lower() == "bearer":
            token, answer = credentials.strip(), None
        elif scheme.lower() == "basic":
            token = _basic_password(credentials.strip())
            answer = BearerAnswer(token)
        else:
            raise flight.FlightUnauthenticatedError(f"unsupported authorization scheme {scheme!r}; use Basic or Bearer")
        if not token or not self.check_token(token):
            raise flight.FlightUnauthenticatedError("the access token is not valid")
        return answer


class HandshakeByHeader(flight.ServerAuthHandler):
    """Lets the Handshake call succeed: TokenAuthFactory has checked its header already (gRPC answers
    Handshake with "unimplemented" when a server has no auth handler), and every other call is checked there
    too, so no Flight-level token is issued or checked here."""

    def authenticate(self, outgoing, incoming) -> None:
        return None

    def is_valid(self, token: bytes) -> str:
        return ""


class BearerAnswer(flight.ServerMiddleware):
    """Sends `authorization: Bearer <token>` back on a call that logged in with basic credentials."""

    def __init__(self, token: str):
        self.token = token

    def sending_headers(self) -> dict:
        return {HEADER: f"Bearer {self.token}"}


def _basic_password(credentials: str) -> str:
    """The password of `user:password` in base64; padding may be left off (the ADBC Go driver does)."""
    try:
        decoded = base64.b64decode(credentials + "=" * (-len(credentials) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise flight.FlightUnauthenticatedError("the basic credentials are not base64 of UTF-8 user:password") from None
    return decoded.partition(":")[2]
