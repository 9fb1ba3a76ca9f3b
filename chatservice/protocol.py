"""
The chat line protocol and the factory that owns the shared registry.

The protocol only frames, decodes and dispatches; everything that outlives
one connection lives on the factory's L{Registry}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IReactorTime,
    ITCPTransport,
)
from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from chatservice import commands, wire
from chatservice.registry import IRecipient, Member, Registry

if TYPE_CHECKING:
    from twisted.internet.interfaces import IAddress

DEFAULT_MAX_LINE = 4096

log = Logger()


@implementer(IHalfCloseableProtocol, IRecipient)
class ChatProtocol(LineReceiver):
    """
    One client connection.

    Lines end in C{\\n}, with an optional C{\\r} before it, so that C{nc}
    (which sends bare C{\\n}) and telnet (C{\\r\\n}) both work; lines sent
    end in C{\\r\\n}.

    Framing is done here rather than by L{LineReceiver.dataReceived}, whose
    over-long-line handling drops the connection and the rest of the buffer:
    an over-long line is refused with an error line, and every line after it
    is still read.

    End of input (a half-close, as C{nc -N} or C{chat-client} do at the end
    of piped input) is a quit: the server reads what remains, sends the
    replies, and then closes.
    """

    delimiter = b"\n"
    factory: ChatFactory
    member: Member | None = None
    _buffer = b""
    _discarding = False

    @property
    def registry(self) -> Registry:
        return self.factory.registry

    @property
    def peer(self) -> IAddress:
        return self.transport.getPeer()  # type: ignore[union-attr]

    def connectionMade(self) -> None:
        if ITCPTransport.providedBy(self.transport):
            # Small interactive lines must not wait on delayed ACKs, and
            # peers that vanish without a FIN must eventually be noticed.
            self.transport.setTcpNoDelay(True)
            self.transport.setTcpKeepAlive(True)
        self.member = self.registry.connect(self)
        log.info("{peer} connected as {nick}", peer=self.peer, nick=self.member.nick)

    def _too_long(self, line: bytes) -> bool:
        # The \r of a \r\n ending does not count against the limit.
        return len(line) - line.endswith(b"\r") > self.factory.max_line

    def dataReceived(self, data: bytes) -> None:
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            if not self._reading:
                self._buffer = b""
                return
            if self._discarding:
                # The rest of a line already refused as too long.
                self._discarding = False
            elif self._too_long(line):
                self._refuse_long_line()
            else:
                self.lineReceived(line)
        if self._discarding:
            self._buffer = b""
        elif self._too_long(self._buffer):
            self._buffer = b""
            self._discarding = True
            self._refuse_long_line()

    @property
    def _reading(self) -> bool:
        """
        Whether input still means anything: not after the member has quit.
        """
        return self.member is not None and self.member.connected

    def _refuse_long_line(self) -> None:
        assert self.member is not None
        log.info(
            "{peer} sent a line over {limit} bytes; dropped",
            peer=self.peer,
            limit=self.factory.max_line,
        )
        self.registry.tell(
            self.member,
            wire.error(
                f"Line too long (the limit is {self.factory.max_line} bytes); "
                "it was dropped."
            ),
        )

    def lineReceived(self, line: bytes) -> None:
        assert self.member is not None
        if line.endswith(b"\r"):
            line = line[:-1]
        text = line.decode("utf-8", "replace")
        if not text.strip():
            return
        commands.dispatch(self.registry, self.member, text)

    # IRecipient

    def deliver(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]

    def close(self) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]

    # IHalfCloseableProtocol

    def readConnectionLost(self) -> None:
        if self._buffer and self._reading and not self._discarding:
            # The last line of input need not end in a newline.
            self.lineReceived(self._buffer)
        self._buffer = b""
        if self.member is not None and self.member.connected:
            self.registry.quit(self.member, "connection closed")
        else:
            self.close()

    def writeConnectionLost(self) -> None:
        self.close()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.member is None:
            return
        if self.member.connected:
            self.registry.disconnect(self.member, "connection lost")
        log.info(
            "{peer} ({nick}) disconnected: {reason}",
            peer=self.peer,
            nick=self.member.nick,
            reason=reason.getErrorMessage(),
        )


class ChatFactory(ServerFactory[ChatProtocol]):
    """
    Builds L{ChatProtocol}s and owns the L{Registry} they share, across every
    listening port.

    @ivar max_line: the longest line, in bytes, a client may send.
    """

    protocol = ChatProtocol

    def __init__(
        self,
        reactor: IReactorTime | None = None,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = cast(IReactorTime, _reactor)
        self.reactor = reactor
        self.max_line = max_line
        # Everything queued in one reactor turn is written in the next
        # iteration, one write per member.
        self.registry = Registry(schedule=lambda flush: reactor.callLater(0, flush))
