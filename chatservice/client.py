"""
C{chat-client}: a terminal client that works like C{nc}, on the reactor.

Lines read from standard input go to the server; lines from the server go
to standard output, with the server's CRLF turned into the local newline.
Standard input and output are a L{StandardIO} on the same reactor as the
connection, so there are no threads.

At the end of input the client half-closes its connection and keeps printing
until the server, having read everything, closes: so piped input is never
cut short. It exits 0 when the server closes after the user quit or input
ended, and 1 (saying why on standard error) when the server cannot be
reached or goes away by itself.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from twisted.internet import endpoints, task
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IReactorCore
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.stdio import StandardIO
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 12345


class Options(usage.Options):
    synopsis = "Usage: chat-client [HOST [PORT]] | chat-client --connect ENDPOINT"
    longdesc = (
        "Connect to a chatservice server (default "
        f"{DEFAULT_HOST}:{DEFAULT_PORT}). Lines typed go to the server, lines "
        "from the server are printed. At the end of input the client waits "
        "for the server to finish, then exits 0."
    )
    optParameters = [
        [
            "connect",
            "c",
            None,
            "Connect to ENDPOINT, a Twisted client endpoint string such as "
            "tcp:host=example.org:port=12345 or unix:path=/tmp/chat.sock "
            "(instead of HOST and PORT).",
        ],
    ]

    endpoint: str

    def parseArgs(self, host: str | None = None, port: str | None = None) -> None:
        if self["connect"] is not None:
            if host is not None:
                raise usage.UsageError("give either HOST [PORT] or --connect")
            from twisted.internet import reactor

            try:
                endpoints.clientFromString(reactor, self["connect"])
            except Exception as e:
                raise usage.UsageError(f"--connect {self['connect']}: {e}") from None
            self.endpoint = self["connect"]
            return
        try:
            number = DEFAULT_PORT if port is None else int(port)
        except ValueError:
            raise usage.UsageError(f"PORT must be a number, not {port!r}") from None
        quoted = endpoints.quoteStringArgument(host or DEFAULT_HOST)
        self.endpoint = f"tcp:host={quoted}:port={number}"


class ServerConnection(Protocol):
    """
    The connection to the chat server: prints what arrives.

    @ivar lost: fires when the connection has ended.
    @ivar reason: why it ended.
    """

    reason: Failure

    def __init__(self) -> None:
        self.lost: Deferred[None] = Deferred()
        self._pending_cr = False
        self._early: list[bytes] = []
        self._output: Callable[[bytes], None] = self._early.append

    def print_to(self, output: Callable[[bytes], None]) -> None:
        """
        Send what arrives to C{output} from now on, starting with anything
        that arrived before there was an output.
        """
        self._output = output
        for data in self._early:
            output(data)
        self._early.clear()

    def dataReceived(self, data: bytes) -> None:
        if self._pending_cr:
            data = b"\r" + data
            self._pending_cr = False
        if data.endswith(b"\r"):
            # The \n of this \r\n may come in the next segment.
            data = data[:-1]
            self._pending_cr = True
        self._output(data.replace(b"\r\n", b"\n"))

    def end_input(self) -> None:
        """
        Tell the server there is nothing more to send; it replies to what it
        has and then closes.
        """
        assert self.transport is not None
        lose_write = getattr(self.transport, "loseWriteConnection", None)
        if lose_write is not None:
            lose_write()
        else:
            self.transport.write(b"\n/quit\n")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._pending_cr:
            self._output(b"\r")
        self.reason = reason
        self.lost.callback(None)


@implementer(IHalfCloseableProtocol)
class Terminal(Protocol):
    """
    Standard input and output: sends what is typed to the server.

    @ivar ended: input has ended, or the user typed C{/quit}; the server
        closing the connection is then expected.
    @ivar closed: fires when standard output has been flushed and closed.
    """

    def __init__(self, server: ServerConnection) -> None:
        self.server = server
        self.ended = False
        self.closed: Deferred[None] = Deferred()
        self._partial = b""

    def dataReceived(self, data: bytes) -> None:
        assert self.server.transport is not None
        self.server.transport.write(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()[-64:]
        for line in lines:
            words = line.strip().split(None, 1)
            if words and words[0].lower() == b"/quit":
                self.ended = True

    def readConnectionLost(self) -> None:
        self.ended = True
        self.server.end_input()

    def writeConnectionLost(self) -> None:
        # Nobody is reading our output any more (as with `| head`). Standard
        # output is gone, so there is nothing left to flush or close.
        self.ended = True
        assert self.server.transport is not None
        self.server.transport.loseConnection()
        self._closed()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closed()

    def _closed(self) -> None:
        if not self.closed.called:
            self.closed.callback(None)


def _complain(message: str) -> None:
    sys.stderr.write(f"chat-client: {message}\n")
    sys.stderr.flush()


async def run(reactor: IReactorCore, options: Options) -> int:
    """
    Connect, relay until the connection ends, and return the exit status.
    """
    endpoint = endpoints.clientFromString(reactor, options.endpoint)
    server = ServerConnection()
    try:
        await endpoints.connectProtocol(endpoint, server)
    except Exception as e:
        _complain(f"cannot connect to {options.endpoint}: {e}")
        return 1
    terminal = Terminal(server)
    stdio = StandardIO(terminal, reactor=reactor)
    server.print_to(stdio.write)
    await server.lost
    reason = server.reason
    status = 0
    if not reason.check(ConnectionDone):
        _complain(f"connection lost: {reason.getErrorMessage()}")
        status = 1
    elif not terminal.ended:
        _complain("the server closed the connection")
        status = 1
    stdio.loseConnection()
    await terminal.closed
    return status


def main(argv: list[str] | None = None) -> None:
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        _complain(f"{e}\n{options}")
        raise SystemExit(2) from None

    async def _main(reactor: IReactorCore) -> None:
        status = await run(reactor, options)
        if status:
            raise SystemExit(status)

    task.react(lambda reactor: Deferred.fromCoroutine(_main(reactor)))


if __name__ == "__main__":
    main()
