"""
An in-memory harness for L{LineFactory} and L{LineProtocol}: every
connection on a L{StringTransport}, the reactor a L{GuardedClock}, nothing
on the network.

  - L{Harness}: a factory on the clock, the clock's controls, and
    connections to the factory.
  - L{Connection}: one connection; what its client sends and what it has
    been sent, checked to be whole CRLF-terminated lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from chatservice.core.accounts import Account, Accounts
from chatservice.core.audit import Audit
from chatservice.core.chat import Chat
from chatservice.core.history import DEFAULT_REPLAY, History
from chatservice.core.server_bans import ServerBans
from chatservice.core.server_operators import ServerOperators
from chatservice.core.stats import Stats
from chatservice.frontends.admission import Admission
from chatservice.frontends.irc.protocol import IRCFactory, IRCProtocol
from chatservice.frontends.limits import Limits
from chatservice.frontends.line.protocol import LineFactory, LineProtocol

# A check of the raw output of one connection: what is wrong with it, or None.
OutputCheck = Callable[[bytes], str | None]


class ManualScheduler:
    """
    Stands in for C{reactor.callLater(0, ...)}: flushes run when told.
    """

    def __init__(self) -> None:
        self.calls: list[Callable[[], None]] = []

    def __call__(self, flush: Callable[[], None]) -> None:
        self.calls.append(flush)

    def run(self) -> None:
        calls, self.calls = self.calls, []
        for call in calls:
            call()


class GuardedClock(Clock):
    """
    A L{Clock} that fails, instead of spinning for ever, when timed calls keep
    scheduling more calls without the clock having to move (a call
    rescheduling itself for an instant that rounds to now).
    """

    budget = 10_000

    def __init__(self) -> None:
        super().__init__()
        self._scheduled = 0

    def advance(self, amount: float) -> None:
        self._scheduled = 0
        super().advance(amount)

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> IDelayedCall:
        self._scheduled += 1
        if self._scheduled > self.budget:
            raise AssertionError(
                f"more than {self.budget} calls scheduled in one clock step at "
                f"{self.seconds()!r}: a timer keeps rescheduling itself"
            )
        return super().callLater(delay, callable, *args, **kw)


class Connection:
    """
    One in-memory connection to the server, and what it has been sent.
    """

    def __init__(
        self,
        harness: Harness,
        proto: LineProtocol | IRCProtocol,
        transport: StringTransport,
    ) -> None:
        self.harness = harness
        self.proto = proto
        self.transport = transport
        # Everything taken from the transport so far.
        self.received = b""

    @property
    def nick(self) -> str:
        assert self.proto.member is not None
        return self.proto.member.nick

    @property
    def connected(self) -> bool:
        return self.proto.member is not None and self.proto.member.connected

    def send(self, data: bytes | str) -> None:
        """
        Feed C{data} to the server as one chunk and let the turn finish.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.proto.dataReceived(data)
        self.harness.turn()

    def lines(self, *lines: str) -> None:
        """
        Send C{lines}, each LF-terminated, in one chunk.
        """
        self.send("".join(line + "\n" for line in lines))

    def say(self, line: str) -> None:
        """
        Send the one line C{line}.
        """
        self.send(line + "\n")

    def take(self) -> list[str]:
        """
        The lines sent to this client since the last call, checking that
        every one of them ended in CRLF (and that the harness's output check,
        if any, finds nothing wrong).
        """
        raw: bytes = self.transport.value()
        self.transport.clear()
        self.received += raw
        if not raw:
            return []
        assert raw.endswith(b"\r\n"), f"output not CRLF-terminated: {raw!r}"
        assert raw.count(b"\n") == raw.count(b"\r\n"), f"bare LF in {raw!r}"
        if self.harness.check is not None:
            problem = self.harness.check(raw)
            assert problem is None, problem
        return raw[: -len(b"\r\n")].decode("utf-8").split("\r\n")

    def everything(self) -> bytes:
        """
        All bytes ever sent to this client, including ones not yet taken.
        """
        pending: bytes = self.transport.value()
        return self.received + pending

    def half_close(self) -> None:
        """
        The client's input ends (as with C{nc -N}), and the turn finishes.
        """
        self.proto.readConnectionLost()
        self.harness.turn()

    def lost(self) -> None:
        """
        The connection is gone, as the reactor reports it.
        """
        self.proto.connectionLost(Failure(ConnectionDone()))
        self.harness.turn()


def discard(*connections: Connection) -> None:
    """
    Throw away (after checking it) what each of C{connections} has been sent.
    """
    for connection in connections:
        connection.take()


def line_factory(
    reactor: Clock,
    limits: Limits | None = None,
    history: History | None = None,
    accounts: Callable[[Chat, dict[str, Account]], Accounts] | None = None,
    replay: int = DEFAULT_REPLAY,
) -> LineFactory:
    """
    A line front end's factory on C{reactor}, with a chat and an admission
    of its own, as the server builds them.
    """
    stats = Stats()
    registered: dict[str, Account] = {}
    chat = Chat(
        schedule=lambda flush: reactor.callLater(0, flush),
        history=history,
        replay=replay,
        stats=stats,
        registered=registered,
        # Bans expire, and the audit log is dated, by the fake clock.
        audit=Audit(reactor.seconds),
        server_bans=ServerBans(reactor.seconds),
        # And fan-out is timed by it: how long a flush took is the test's
        # to say (a cluster's node paces its output by it).
        timer=reactor.seconds,
    )
    admission = Admission(
        Limits() if limits is None else limits, stats, reactor, chat.server_bans
    )
    return LineFactory(
        chat, admission, None if accounts is None else accounts(chat, registered)
    )


class Harness:
    """
    A factory on a fake clock, and connections to it.

    @ivar check: a further check of every connection's output when it is
        taken, if not C{None}.
    @ivar connections: every chat connection made by L{connect}, in order.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        check: OutputCheck | None = None,
        history: History | Callable[[Clock], History] | None = None,
        accounts: Callable[[Chat, dict[str, Account]], Accounts] | None = None,
        replay: int = DEFAULT_REPLAY,
        operators: Iterable[str] = (),
        clock: GuardedClock | None = None,
    ) -> None:
        """
        @param history: the history, or what makes it given the clock.
        @param accounts: makes the accounts, given the chat and the dict of
            accounts it consults; without it the server keeps none.
        @param operators: the accounts that are server operators.
        @param clock: the fake reactor, if it is shared (by the nodes of a
            cluster); by default one of its own.
        """
        self.clock = GuardedClock() if clock is None else clock
        self.factory = line_factory(
            self.clock,
            limits,
            history(self.clock) if callable(history) else history,
            accounts,
            replay,
        )
        self.chat = self.factory.chat
        self.admission = self.factory.admission
        self.accounts = self.factory.accounts
        self.operators = ServerOperators(self.chat, self.accounts, operators)
        self.factory.operators = self.operators
        self.stats = self.factory.stats
        self.check = check
        self.irc: IRCFactory | None = None
        self.connections: list[Connection] = []
        self._ports = iter(range(40000, 50000))

    def shut_down(self, grace: float) -> Deferred[None]:
        """
        Stop the chat as the server does, with C{grace} seconds to spare.
        """
        return self.admission.shut_down(self.chat, grace)

    def turn(self) -> None:
        """
        Run what the chat scheduled for the end of this reactor turn.
        """
        self.clock.advance(0)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def advance_to(self, when: float) -> None:
        """
        Set the clock to exactly C{when} and run what is due.
        """
        assert when >= self.clock.seconds()
        self.clock.rightNow = when
        self.clock.advance(0)

    def next_call(self) -> float:
        calls = self.clock.getDelayedCalls()
        assert calls, "nothing is scheduled"
        return min(call.getTime() for call in calls)

    def settle(self, seconds: int = 30) -> None:
        """
        Let the flood limiter release whatever it held.
        """
        self.turn()
        for _ in range(seconds):
            self.clock.advance(1)

    def address(self, host: str = "10.0.0.1") -> IAddress:
        """
        A TCP address on C{host} with a port not used before.
        """
        port = next(self._ports)
        if ":" in host:
            return IPv6Address("TCP", host, port)
        return IPv4Address("TCP", host, port)

    def build(
        self, address: IAddress, transport: StringTransport | None = None
    ) -> tuple[Protocol, StringTransport]:
        """
        Accept a connection from C{address}, whatever protocol it gets, on
        C{transport} (by default a new one with C{address} as its peer).
        """
        proto = self.factory.buildProtocol(address)
        assert proto is not None
        if transport is None:
            transport = StringTransport(peerAddress=address)
        proto.makeConnection(transport)
        self.turn()
        return proto, transport

    def connect_irc(self, address: IAddress | None = None) -> Connection:
        """
        A new IRC connection, to an IRC front end on the same chat, from
        C{address}; not yet registered.
        """
        if self.irc is None:
            self.irc = IRCFactory(
                self.chat,
                self.admission,
                "My.Little.Server",
                self.accounts,
                operators=self.operators,
            )
        address = address or self.address()
        proto = self.irc.buildProtocol(address)
        assert isinstance(proto, IRCProtocol), "refused"
        transport = StringTransport(peerAddress=address)
        proto.makeConnection(transport)
        self.turn()
        connection = Connection(self, proto, transport)
        self.connections.append(connection)
        return connection

    def connect(
        self,
        address: IAddress | None = None,
        transport: StringTransport | None = None,
    ) -> Connection:
        """
        A new chat connection from C{address} (by default L{address}()); it
        must not be refused.
        """
        proto, transport = self.build(address or self.address(), transport)
        assert isinstance(proto, LineProtocol), f"refused: {transport.value()!r}"
        connection = Connection(self, proto, transport)
        self.connections.append(connection)
        return connection

    def clients(self, n: int) -> list[Connection]:
        """
        C{n} connected clients, all in the lobby, with empty output.
        """
        connections = [self.connect() for _ in range(n)]
        discard(*connections)
        return connections
