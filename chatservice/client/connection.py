"""
One connection of C{chat-client} to the server, and what its end means.

L{ServerConnection} prints what arrives (with the server's CRLF turned into
the local newline) and sends what is typed; L{Link} is what the console
sends to, one connection or a
L{chatservice.client.reconnect.ReconnectingLink}; L{describe_end} turns the
way a connection ended into the client's exit status and the one line it
says about it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import INegotiated, ISSLTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from chatservice.client.tls import describe_tls_failure

# The server's reply to /quit and to the end of input, its last line then,
# as printed (tests/client/test_line_format.py checks it against the server's
# own rendering).
GOODBYE = b"*** Goodbye.\n"


class Link(TypingProtocol):
    """
    Where the console sends what is typed: one L{ServerConnection}, or a
    L{chatservice.client.reconnect.ReconnectingLink} that outlives many.
    """

    def send(self, data: bytes) -> None:
        """
        Send C{data}, as typed, to the server.
        """

    def end_input(self) -> None:
        """
        Input has ended: let the server answer what it has, then close.
        """

    def close(self) -> None:
        """
        Nobody reads the output any more: leave now.
        """


def is_quit(line: bytes) -> bool:
    """
    Whether the typed C{line} is a C{/quit} command, after which the server
    closes the connection.
    """
    words = line.strip().split(None, 1)
    return bool(words) and words[0].lower() == b"/quit"


class HeldOutput:
    """
    Where what the server sends is printed: held until there is somewhere
    to print it, since the connection comes up before standard output does.
    """

    def __init__(self) -> None:
        self._early: list[bytes] = []
        self.write: Callable[[bytes], None] = self._early.append

    def print_to(self, output: Callable[[bytes], None]) -> None:
        """
        Send what arrives to C{output} from now on, starting with anything
        that arrived before there was an output.
        """
        self.write = output
        for data in self._early:
            output(data)
        self._early.clear()


class ServerConnection(Protocol):
    """
    The connection to the chat server: prints what arrives.

    @ivar lost: fires when the connection has ended.
    @ivar reason: why it ended.
    @ivar said_goodbye: the last line from the server was C{*** Goodbye.},
        its answer to C{/quit} or to the end of input: everything sent has
        been handled, however the connection then ends.
    """

    reason: Failure

    def __init__(self) -> None:
        self.lost: Deferred[None] = Deferred()
        self._pending_cr = False
        self._output = HeldOutput()
        self.print_to = self._output.print_to
        self._tail = b""

    @property
    def said_goodbye(self) -> bool:
        return (b"\n" + self._tail).endswith(b"\n" + GOODBYE)

    def dataReceived(self, data: bytes) -> None:
        if self._pending_cr:
            data = b"\r" + data
            self._pending_cr = False
        if data.endswith(b"\r"):
            # The \n of this \r\n may come in the next segment.
            data = data[:-1]
            self._pending_cr = True
        data = data.replace(b"\r\n", b"\n")
        self._tail = (self._tail + data)[-len(GOODBYE) - 1 :]
        self._output.write(data)
        if self.said_goodbye and self.transport is not None and _is_tls(self.transport):
            # Nothing follows a goodbye. Over TCP the server's close comes
            # at once; over TLS it may wait for a close_notify of ours
            # (the server keeps the connection up to 10 s for it), so
            # close now.
            self.transport.loseConnection()

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        if not self.lost.called:
            self.transport.write(data)

    def end_input(self) -> None:
        """
        Tell the server there is nothing more to send; it replies to what it
        has and then closes.

        A TCP connection is half-closed. TLS cannot be: Twisted's TLS
        transport forwards C{loseWriteConnection} to the TCP connection
        beneath it, which would shut the socket under TLS data that is still
        waiting for the handshake. So TLS connections, and transports that
        cannot half-close at all, send C{/quit} instead.
        """
        transport = self.transport
        assert transport is not None
        if self.lost.called:
            # Gone already (the reactor is stopping, say): nothing to end.
            return
        lose_write = getattr(transport, "loseWriteConnection", None)
        if lose_write is not None and not _is_tls(transport):
            lose_write()
        else:
            transport.write(b"\n/quit\n")

    def close(self) -> None:
        assert self.transport is not None
        if not self.lost.called:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._pending_cr:
            self._output.write(b"\r")
        self.reason = reason
        self.lost.callback(None)


def _is_tls(transport: object) -> bool:
    return INegotiated.providedBy(transport) or ISSLTransport.providedBy(transport)


def describe_end(
    connection: ServerConnection, ended: bool, tls_server: str | None
) -> tuple[int, str | None]:
    """
    The exit status, and what to say on standard error, when C{connection}
    has ended; C{ended} if the user quit or input ended, so that the server
    closing was expected; C{tls_server} names the server if it is reached
    over TLS.

    After C{*** Goodbye.} the session ended as asked even if the connection
    then ended roughly: over TLS the server may close without a TLS
    close_notify, which Twisted reports as a lost connection.
    """
    reason = connection.reason
    if tls_server is not None:
        failed = describe_tls_failure(reason, tls_server)
        if failed is not None:
            return 1, failed
    if ended and (connection.said_goodbye or reason.check(ConnectionDone)):
        return 0, None
    if not reason.check(ConnectionDone):
        return 1, f"connection lost: {reason.getErrorMessage()}"
    return 1, "the server closed the connection"
