"""
Admission: how many connections the server holds, across every listener of
every front end, and the end of them all at shutdown.

It is also where the server bans on addresses are checked: a banned
address is refused before its connection is counted or anything is read
from it, in the front end's own words.

C{--max-clients} and C{--max-per-ip} are promises about the server, not
about one port or one protocol, so one L{Admission} is shared by every front
end's factory. It also knows every open connection, which is what a graceful
stop waits for.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from twisted.internet.defer import CancelledError, Deferred, TimeoutError, succeed
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatservice.core import errors, events
from chatservice.core.chat import Chat
from chatservice.core.server_bans import ServerBan, ServerBans
from chatservice.core.stats import Stats
from chatservice.frontends.limits import Limits, address_key

log = Logger()


class Admitted(Protocol):
    """
    A connection admission counts: it can be cut off when time is up.
    """

    def abort(self) -> None:
        """Drop the connection at once, whatever it has not yet sent."""


class Refusal(TwistedProtocol):
    """
    Says why a connection is refused, in what its front end would send, and
    closes it.
    """

    def __init__(self, data: bytes, stats: Stats) -> None:
        self.data = data
        self.stats = stats

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.stats.bytes_out += len(self.data)
        self.transport.write(self.data)
        self.transport.loseConnection()


class Admission:
    """
    The count of open connections, in all and per address, and the stop.

    @ivar accepting_input: whether front ends should still act on input;
        false once the server is stopping.
    """

    def __init__(
        self,
        limits: Limits,
        stats: Stats,
        reactor: IReactorTime,
        bans: ServerBans | None = None,
    ) -> None:
        """
        @param bans: the server bans addresses are checked against; none
            if None.
        """
        self.limits = limits
        self.bans = bans
        self.stats = stats
        self.reactor = reactor
        self.per_address: Counter[str] = Counter()
        self.open: dict[Admitted, str | None] = {}
        self.accepting_input = True
        self._all_closed: list[Deferred[None]] = []

    @property
    def connections(self) -> int:
        return len(self.open)

    def refusal(self, address: IAddress) -> errors.ChatError | None:
        """
        Why a new connection from C{address} must be refused, if it must;
        the refusal is logged and counted.
        """
        limits = self.limits
        error: errors.ChatError
        if limits.max_clients and self.connections >= limits.max_clients:
            error, reason = errors.ServerFull(limits.max_clients), "max clients"
        elif (
            (key := address_key(address)) is not None
            and limits.max_per_ip
            and self.per_address[key] >= limits.max_per_ip
        ):
            error, reason = errors.TooManyFromAddress(limits.max_per_ip), "max per ip"
        elif (ban := self._banned(address)) is not None:
            error, reason = errors.ServerBanned(ban.reason), "server ban"
        else:
            return None
        log.info("{peer} refused: {reason}", peer=address, reason=reason)
        self.stats.refused[reason] += 1
        return error

    def _banned(self, address: IAddress) -> ServerBan | None:
        host = getattr(address, "host", None)
        if self.bans is None or not isinstance(host, str):
            return None
        return self.bans.address_ban(host)

    def admit(self, connection: Admitted, address: IAddress) -> None:
        """
        Count C{connection}, from C{address}, until L{release}.
        """
        key = address_key(address)
        self.open[connection] = key
        if key is not None:
            self.per_address[key] += 1

    def release(self, connection: Admitted) -> None:
        """
        A counted connection has closed: its slot is free at once.
        """
        if connection not in self.open:
            return
        key = self.open.pop(connection)
        if key is not None:
            self.per_address[key] -= 1
            if not self.per_address[key]:
                del self.per_address[key]
        if not self.open:
            waiting, self._all_closed = self._all_closed, []
            for d in waiting:
                d.callback(None)

    def shut_down(self, chat: Chat, grace: float) -> Deferred[None]:
        """
        Stop the chat: stop acting on input, deliver what was said, tell
        everyone the server is going and close every connection. Fires when
        every connection has closed; connections that have not taken their
        last output within C{grace} seconds are aborted.
        """
        self.accepting_input = False
        chat.close_all(events.Closing())
        if not self.open:
            return succeed(None)
        log.info(
            "Shutting down: waiting up to {grace} seconds for {count} "
            "connection(s) to take their last lines",
            grace=grace,
            count=len(self.open),
        )
        closed: Deferred[None] = Deferred()
        self._all_closed.append(closed)

        def abort_the_rest(failure: Failure) -> None:
            # addTimeout turns its cancellation into a TimeoutError.
            failure.trap(CancelledError, TimeoutError)
            log.warn(
                "Shutting down: aborting {count} connection(s) that did not "
                "take their last lines within {grace} seconds",
                count=len(self.open),
                grace=grace,
                reason="shutdown grace",
            )
            for connection in list(self.open):
                connection.abort()

        closed.addTimeout(grace, self.reactor)
        closed.addErrback(abort_the_rest)
        return closed
