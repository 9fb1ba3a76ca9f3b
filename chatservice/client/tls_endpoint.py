"""
TLS over a stream endpoint, telling a server that does not speak TLS apart.

Pointed at a plain-text port, a TLS client learns only OpenSSL's "wrong
version number": the server's first bytes were not a TLS record. A plain
chatservice port does better than that: it answers a TLS handshake with a
line saying it speaks plain text, and closes. L{TLSClientEndpoint} is
L{twisted.internet.endpoints.wrapClientTLS} with one layer under TLS and one
over it, so that such a server's words reach the user:

  - under TLS, L{_PlainTextListener} looks at the server's first bytes. A
    TLS record starts with a content type byte (20 to 24), which is no
    printable character; so printable text means a plain-text server. Those
    bytes are then kept from TLS (which would give up on the first of them,
    before the explanation has arrived), and the server is heard out until
    it closes, says L{PLAIN_TEXT_LIMIT} bytes, or has had
    L{PLAIN_TEXT_GRACE} seconds;
  - over TLS, L{_Explainer} hands the application L{PlainTextReply}, with
    what the server said, as the reason the connection ended, in place of
    the TLS error.

Nothing received in plain text is ever delivered as data: only TLS carries
the chat.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import connectionDone
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

# How long a server that answered in plain text may go on before the client
# closes, and how much of what it says is kept.
PLAIN_TEXT_GRACE = 3.0
PLAIN_TEXT_LIMIT = 4096

# The start of a line that the chat server sends to say something failed
# (chatservice.frontends.line.wire.error): its explanation, when it sends
# one among other lines.
ERROR_PREFIX = "!!! "

# Printable ASCII, and the white space of a line of text.
_TEXT = frozenset(range(0x20, 0x7F)) | frozenset(b"\r\n\t")

# The longest server's line shown to the user.
_SHOWN = 200


class PlainTextReply(Exception):
    """
    The server answered the TLS handshake in plain text: the port does not
    speak TLS.

    @ivar line: the line of its reply that says the most, or C{""} if it
        said nothing readable.
    """

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line

    def __str__(self) -> str:
        if self.line:
            return f'the server answered in plain text: "{self.line}"'
        return "the server answered in plain text"


def explanation(received: bytes) -> str:
    """
    The line of a plain-text reply to show the user: the last error line
    (a chatservice server's explanation, after its welcome), or else the
    first line (a banner or a status line, for other servers); made
    printable and cut to a length that fits a line of the terminal.
    """
    lines = [
        "".join(c for c in line if c.isprintable()).strip()
        for line in received.decode("utf-8", "replace").splitlines()
    ]
    lines = [line for line in lines if line]
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    if errors:
        line = errors[-1][len(ERROR_PREFIX) :]
    elif lines:
        line = lines[0]
    else:
        return ""
    return line if len(line) <= _SHOWN else line[: _SHOWN - 3] + "..."


class _Explainer(ProtocolWrapper):
    """
    Over TLS: the application's transport, which replaces the reason the
    connection ended by L{PlainTextReply} when the server spoke plain text.

    @ivar reply: set by the L{_PlainTextListener} of the same connection.
    """

    reply: PlainTextReply | None = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.reply is not None:
            reason = Failure(self.reply)
        super().connectionLost(reason)


class _PlainTextListener(ProtocolWrapper):
    """
    Under TLS: passes the server's bytes on to TLS, unless the first of them
    are plain text; then keeps them, and tells the connection's
    L{_Explainer} what they were when the connection ends.
    """

    factory: _ListenerFactory

    def __init__(self, factory: _ListenerFactory, wrapped: IProtocol) -> None:
        super().__init__(factory, wrapped)  # type: ignore[arg-type]
        self._plain: bytes | None = None
        self._decided = False
        self._deadline: IDelayedCall | None = None

    def dataReceived(self, data: bytes) -> None:
        if not self._decided and data:
            self._decided = True
            if all(byte in _TEXT for byte in data[:16]):
                self._plain = b""
                assert self.transport is not None
                self._deadline = self.factory.clock.callLater(
                    PLAIN_TEXT_GRACE, self.transport.loseConnection
                )
        if self._plain is None:
            super().dataReceived(data)
            return
        self._plain = (self._plain + data)[:PLAIN_TEXT_LIMIT]
        if len(self._plain) == PLAIN_TEXT_LIMIT and self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        if self._plain is not None:
            explainer = getattr(self.wrappedProtocol, "wrappedProtocol", None)
            if isinstance(explainer, _Explainer):
                explainer.reply = PlainTextReply(explanation(self._plain))
        super().connectionLost(reason)


class _ListenerFactory(WrappingFactory):
    protocol = _PlainTextListener

    def __init__(self, wrappedFactory: IProtocolFactory, clock: IReactorTime) -> None:
        super().__init__(wrappedFactory)
        self.clock = clock


class _ExplainerFactory(WrappingFactory):
    protocol = _Explainer


@implementer(IStreamClientEndpoint)
class TLSClientEndpoint:
    """
    TLS with C{creator} over C{inner}, as
    L{twisted.internet.endpoints.wrapClientTLS} makes it, except that a
    server answering in plain text ends the connection with
    L{PlainTextReply}.
    """

    def __init__(
        self,
        creator: IOpenSSLClientConnectionCreator,
        inner: IStreamClientEndpoint,
        clock: IReactorTime,
    ) -> None:
        self._creator = creator
        self._inner = inner
        self._clock = clock

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Connect, and fire with the application's protocol once connected
        (before the handshake, as C{wrapClientTLS} does).
        """
        tls = TLSMemoryBIOFactory(
            self._creator, True, _ExplainerFactory(protocolFactory), self._clock
        )
        connecting: Deferred[Any] = self._inner.connect(
            _ListenerFactory(tls, self._clock)
        )
        return connecting.addCallback(_application)


def _application(listener: ProtocolWrapper) -> IProtocol:
    """
    The application's protocol, under the three layers of a connection:
    listener, TLS and explainer.
    """
    protocol: IProtocol = listener.wrappedProtocol.wrappedProtocol.wrappedProtocol  # type: ignore[attr-defined]
    return protocol
