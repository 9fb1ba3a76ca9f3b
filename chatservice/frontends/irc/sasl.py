"""
SASL for IRC clients (IRCv3 C{sasl} 3.1 and 3.2), with the one mechanism
the chat's accounts can check: C{PLAIN} (RFC 4616).

A client sends C{AUTHENTICATE PLAIN}, the server answers C{AUTHENTICATE +},
and the client sends its response in base64, cut into 400-byte chunks: a
chunk shorter than 400 bytes ends it, and a response whose last chunk is
exactly 400 bytes (or an empty one) is ended by C{AUTHENTICATE +}.
C{AUTHENTICATE *} aborts. This module is the exchange's state and the
decoding, without I/O: L{Exchange.receive} says what each C{AUTHENTICATE}
line leads to, and the IRC protocol checks the credentials with the
accounts and sends the replies, which are built here too.

The response is bounded (L{RESPONSE_MAX} bytes of base64), so a client
cannot make the server hold an endless one: past it, the exchange fails.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from chatservice.core.events import Event
from chatservice.frontends.irc.renderer import IRCError, Raw, Reply

MECHANISMS = ("PLAIN",)
# Bytes of base64 in one AUTHENTICATE line.
CHUNK = 400
# Bytes of base64 in a whole response: an authorization and an
# authentication identity (nicknames) and a long password, with room.
RESPONSE_MAX = 8 * CHUNK


@dataclass(frozen=True)
class Credentials:
    """
    What a client's PLAIN response says: who it is (C{authcid}) and its
    password; C{authzid}, who it wants to act as, is empty or the same.
    """

    authzid: str
    authcid: str
    password: str


class Failed(Exception):
    """The exchange failed for a reason that is the client's doing."""


def decode_plain(response: str) -> Credentials:
    """
    The credentials in a base64 PLAIN response; L{Failed} if it is not
    one (bad base64, not three fields, not UTF-8, no identity or password,
    or an authorization identity that is someone else's).
    """
    try:
        data = base64.b64decode(response, validate=True)
        authzid, authcid, password = (
            part.decode("utf-8") for part in data.split(b"\0")
        )
    except (binascii.Error, ValueError):
        raise Failed("not a PLAIN response") from None
    if not authcid or not password:
        raise Failed("no identity or no password")
    if authzid and authzid.casefold() != authcid.casefold():
        # Acting as another account needs a right nobody has here.
        raise Failed("authorization identity is not the authentication identity")
    return Credentials(authzid, authcid, password)


class Exchange:
    """
    One connection's SASL state: which mechanism is under way, and the
    chunks of the response so far.
    """

    def __init__(self) -> None:
        self.mechanism: str | None = None
        self._chunks: list[str] = []
        self._size = 0

    @property
    def active(self) -> bool:
        return self.mechanism is not None

    def abort(self) -> None:
        self.mechanism = None
        self._chunks.clear()
        self._size = 0

    def receive(self, param: str) -> Credentials | tuple[Event, ...]:
        """
        What the C{AUTHENTICATE param} line leads to: the credentials to
        check, or the replies to send: a challenge, the end of the exchange
        (then it is over), or none yet (a chunk of a longer response). Bad
        input is a reply, never an exception.
        """
        if param == "*":
            # An abort with nothing under way is answered the same way:
            # the client wanted none, and has none.
            self.abort()
            return (aborted(),)
        if not self.active:
            mechanism = param.upper()
            if mechanism not in MECHANISMS:
                return (mechanisms(), failed())
            self.mechanism = mechanism
            return (Raw("AUTHENTICATE", ("+",), "none"),)
        if len(param) > CHUNK:
            self.abort()
            return (too_long(),)
        if param != "+":
            self._chunks.append(param)
            self._size += len(param)
            if self._size > RESPONSE_MAX:
                self.abort()
                return (failed(),)
            if len(param) == CHUNK:
                return ()
        response = "".join(self._chunks)
        self.abort()
        try:
            return decode_plain(response)
        except Failed:
            return (failed(),)


# The replies, as IRCv3's sasl-3.1 names them.


def mechanisms() -> Reply:
    return Reply("908", (",".join(MECHANISMS), "are available SASL mechanisms"))


def failed() -> Reply:
    return Reply("904", ("SASL authentication failed",))


def too_long() -> Reply:
    return Reply("905", ("SASL message too long",))


def aborted() -> Reply:
    return Reply("906", ("SASL authentication aborted",))


def already() -> IRCError:
    return IRCError("907", ("You have already authenticated using SASL",))


def succeeded() -> Reply:
    return Reply("903", ("SASL authentication successful",))
