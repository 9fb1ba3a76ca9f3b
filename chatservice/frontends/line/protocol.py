"""
The chat line protocol and the factory that owns the shared registry.

The protocol only frames, decodes and dispatches; everything that outlives
one connection lives on the factory's L{Registry}.
"""

from __future__ import annotations

import socket
from collections import Counter
from typing import cast

from twisted.internet import tcp
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, succeed
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IDelayedCall,
    IHalfCloseableProtocol,
    IPushProducer,
    IReactorTime,
    ITCPTransport,
)
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from chatservice.core import sanitize
from chatservice.core.flood import TokenBucket
from chatservice.core.history import DEFAULT_REPLAY, History
from chatservice.core.registry import IRecipient, Member, Registry
from chatservice.core.stats import Stats
from chatservice.frontends.limits import Limits, address_key
from chatservice.frontends.line import commands, wire

# Seconds a connection being closed has to take its last lines before it is
# aborted.
CLOSE_GRACE = 10.0

log = Logger()


@implementer(IPushProducer)
class Backlog:
    """
    What waits for a client that is not reading.

    Registered as the transport's streaming producer, it is paused when the
    socket's own buffer fills; output is then held here instead, up to the
    C{sendq} limit, and written when the transport drains.
    """

    __slots__ = ("held", "paused", "protocol", "size")

    def __init__(self, protocol: ChatProtocol) -> None:
        self.protocol = protocol
        self.paused = False
        self.held: list[bytes] = []
        self.size = 0

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self.held:
            data = b"".join(self.held)
            self.held.clear()
            self.size = 0
            self.protocol.deliver(data)

    def stopProducing(self) -> None:
        self.held.clear()
        self.size = 0


# How a TLS connection starts: a handshake record (22), version 3.x.
TLS_HANDSHAKE = b"\x16\x03"

# Marks the place of a line refused as too long in the queue of lines to
# handle, so that its error line comes in order.
_TOO_LONG = None


@implementer(IHalfCloseableProtocol, IRecipient)
class ChatProtocol(TimeoutMixin, LineReceiver):
    """
    One client connection.

    Lines end in C{\\n}, with an optional C{\\r} before it, so that C{nc}
    (which sends bare C{\\n}) and telnet (C{\\r\\n}) both work; lines sent
    end in C{\\r\\n}.

    Framing is done here rather than by L{LineReceiver.dataReceived}, whose
    over-long-line handling drops the connection and the rest of the buffer:
    an over-long line is refused with an error line, and every line after it
    is still read. A chunk is split with one C{bytes.split}.

    Flood control: lines beyond the connection's token bucket are held and
    handled as tokens come back (IRC's "fake lag"); past C{flood_queue} held
    lines the client is told and disconnected. Other clients never wait for
    a flooder: its lines are handled only as its own tokens allow.

    End of input (a half-close, as C{nc -N} or C{chat-client} do at the end
    of piped input) is a quit: the server handles what remains, sends the
    replies, and then closes.
    """

    delimiter = b"\n"
    factory: ChatFactory
    member: Member | None = None
    _buffer = b""
    _discarding = False
    _eof = False
    _bucket: TokenBucket | None = None
    _release_call: IDelayedCall | None = None
    _abort_call: IDelayedCall | None = None
    # The socket of a plain TCP connection, for writing through.
    _sock: socket.socket | None = None
    _stats: Stats
    _producing = False
    _first_data = True
    _address_key: str | None = None
    _counted = False
    # The command this connection waits for, and the lines that came
    # meanwhile.
    _waiting: Deferred[None] | None = None
    _after_wait: list[bytes | None]

    @property
    def registry(self) -> Registry:
        return self.factory.registry

    @property
    def limits(self) -> Limits:
        return self.factory.limits

    @property
    def peer(self) -> IAddress:
        return self.transport.getPeer()  # type: ignore[union-attr]

    @property
    def _reading(self) -> bool:
        """
        Whether input still means anything: not after the member has left,
        nor once the server is stopping.
        """
        return (
            self.member is not None
            and self.member.connected
            and self.factory.accepting_input
        )

    def connectionMade(self) -> None:
        transport = self.transport
        assert transport is not None
        if ITCPTransport.providedBy(transport):
            # Small interactive lines must not wait on delayed ACKs, and
            # peers that vanish without a FIN must eventually be noticed.
            transport.setTcpNoDelay(True)
            transport.setTcpKeepAlive(True)
        if type(transport) is tcp.Server:
            self._sock = transport.getHandle()
        self._backlog = Backlog(self)
        self._stats = self.factory.stats
        cast(IConsumer, transport).registerProducer(self._backlog, True)
        self._producing = True
        limits = self.limits
        reactor = self.factory.reactor
        self.callLater = reactor.callLater  # type: ignore[assignment]
        if limits.flood_limited(self.peer):
            self._bucket = TokenBucket(
                limits.flood_rate, limits.flood_burst, reactor.seconds()
            )
        self._held: list[bytes | None] = []
        self._after_wait = []
        self.member = self.registry.connect(self)
        if limits.idle_timeout > 0:
            self.setTimeout(limits.idle_timeout)
        log.info("{peer} connected as {nick}", peer=self.peer, nick=self.member.nick)

    # Input

    def dataReceived(self, data: bytes) -> None:
        stats = self._stats
        stats.bytes_in += len(data)
        if not self._reading:
            return
        if self._first_data:
            self._first_data = False
            if data.startswith(TLS_HANDSHAKE):
                self._refuse_tls()
                return
        if self.timeOut is not None:
            self.resetTimeout()
        lines: list[bytes | None]
        lines = (self._buffer + data).split(b"\n")  # type: ignore[assignment]
        buffer = lines.pop()
        assert buffer is not None
        self._buffer = buffer
        if self._discarding and lines:
            # The end of a line already refused as too long.
            del lines[0]
            self._discarding = False
        if self._discarding:
            self._buffer = b""
        elif self._too_long(buffer):
            self._buffer = b""
            self._discarding = True
            lines.append(_TOO_LONG)
        if lines:
            stats.lines_received += len(lines)
            self._accept(lines)

    def _too_long(self, line: bytes) -> bool:
        # The \r of a \r\n ending does not count against the limit.
        return len(line) - line.endswith(b"\r") > self.limits.max_line

    def _accept(self, lines: list[bytes | None]) -> None:
        """
        Handle what the flood limit allows now and hold back the rest.
        """
        bucket = self._bucket
        if bucket is None:
            self._handle(lines)
            return
        if not self._held:
            granted = bucket.take(len(lines), self.factory.reactor.seconds())
            if granted == len(lines):
                self._handle(lines)
                return
            self._handle(lines[:granted])
            lines = lines[granted:]
        held = self._held
        held.extend(lines)
        self._stats.flood_delayed += len(lines)
        if len(held) > self.limits.flood_queue:
            self._excess_flood()
        elif self._release_call is None and self._reading:
            self._schedule_release(bucket)

    def _schedule_release(self, bucket: TokenBucket) -> None:
        """
        Come back to the held lines when the next token is due.
        """
        reactor = self.factory.reactor
        self._release_call = reactor.callLater(
            bucket.wait(reactor.seconds()), self._release
        )

    def _release(self) -> None:
        """
        Handle held lines as tokens have come back.
        """
        self._release_call = None
        bucket = self._bucket
        assert bucket is not None
        held = self._held
        granted = bucket.take(len(held), self.factory.reactor.seconds())
        batch = held[:granted]
        del held[:granted]
        self._handle(batch)
        if held and self._reading:
            self._schedule_release(bucket)
        elif self._eof and self._waiting is None:
            self._end_of_input()

    def _handle(self, lines: list[bytes | None]) -> None:
        for index, line in enumerate(lines):
            if not self._reading:
                return
            if self._waiting is not None:
                # A command is still at work: the rest waits for it.
                self._after_wait.extend(lines[index:])
                if len(self._after_wait) > self.limits.flood_queue:
                    self._excess_flood()
                return
            if line is _TOO_LONG or self._too_long(line):
                self._refuse_long_line()
            else:
                self.lineReceived(line)

    def lineReceived(self, line: bytes) -> None:
        assert self.member is not None
        if line.endswith(b"\r"):
            line = line[:-1]
        decoded = sanitize.decode(line)
        text = sanitize.safe(decoded)
        if not text.strip():
            return
        waiting = commands.dispatch(self.factory.chat, self.member, text, decoded)
        if waiting is not None and not waiting.called:
            self._waiting = waiting
            waiting.addBoth(self._done_waiting)

    def _done_waiting(self, result: object) -> None:
        self._waiting = None
        lines, self._after_wait = self._after_wait, []
        self._handle(lines)
        if self._eof and self._waiting is None and not self._held:
            self._end_of_input()

    # Refusals

    def _refuse_long_line(self) -> None:
        assert self.member is not None
        limit = self.limits.max_line
        log.info(
            "{peer} ({nick}) sent a line over {limit} bytes; dropped",
            peer=self.peer,
            nick=self.member.nick,
            limit=limit,
            reason="line too long",
        )
        self.registry.tell(
            self.member,
            wire.error(f"Line too long (the limit is {limit} bytes); it was dropped."),
        )

    def _refuse_tls(self) -> None:
        """
        A TLS client on a plain port: its handshake would otherwise be
        relayed to the room as lines of binary noise.
        """
        assert self.member is not None
        log.info(
            "{peer} ({nick}) disconnected: TLS handshake on a plain port",
            peer=self.peer,
            nick=self.member.nick,
            reason="TLS on a plain port",
        )
        self.registry.dismiss(
            self.member,
            wire.error("This port speaks plain text, not TLS; use the TLS port."),
            "TLS on a plain port",
        )

    def _excess_flood(self) -> None:
        assert self.member is not None
        log.warn(
            "{peer} ({nick}) disconnected: excess flood, {held} lines held",
            peer=self.peer,
            nick=self.member.nick,
            held=len(self._held),
            reason="excess flood",
        )
        self._held.clear()
        self._cancel_release()
        self.registry.dismiss(
            self.member,
            wire.error(
                f"Excess flood: more than {self.limits.flood_queue} lines "
                f"waiting at {self.limits.flood_rate:g} lines a second; "
                "disconnecting."
            ),
            "excess flood",
        )

    def timeoutConnection(self) -> None:
        if not self._reading:
            return
        if self._held:
            # Lines held by flood control are input not yet handled, not
            # silence.
            self.setTimeout(self.limits.idle_timeout)
            return
        assert self.member is not None
        log.info(
            "{peer} ({nick}) disconnected: idle for {seconds} seconds",
            peer=self.peer,
            nick=self.member.nick,
            seconds=self.limits.idle_timeout,
            reason="idle timeout",
        )
        self.registry.dismiss(
            self.member,
            wire.error(
                f"No input for {self.limits.idle_timeout:g} seconds; disconnecting."
            ),
            "idle timeout",
        )

    def _sendq_exceeded(self) -> None:
        assert self.member is not None
        log.warn(
            "{peer} ({nick}) disconnected: SendQ exceeded, {size} bytes waiting",
            peer=self.peer,
            nick=self.member.nick,
            size=self._backlog.size,
            reason="sendq exceeded",
        )
        self._backlog.stopProducing()
        self._stats.sendq_disconnects += 1
        self.registry.disconnect(self.member, "SendQ exceeded")
        self.transport.abortConnection()  # type: ignore[union-attr]

    # IRecipient

    def deliver(self, data: bytes) -> None:
        self._stats.bytes_out += len(data)
        backlog = self._backlog
        if not backlog.paused:
            sock = self._sock
            if sock is not None:
                data = self._write_through(sock, data)
                if not data:
                    return
            self.transport.write(data)  # type: ignore[union-attr]
            return
        backlog.held.append(data)
        backlog.size += len(data)
        if backlog.size > self.limits.sendq and self._reading:
            self._sendq_exceeded()

    def _write_through(self, sock: socket.socket, data: bytes) -> bytes:
        """
        Send C{data} straight to the socket when the transport has nothing
        buffered, and return what the socket did not take.

        L{FileDescriptor.write} only buffers, then registers the socket for
        writability, sends when the reactor says it may, and unregisters:
        two C{epoll_ctl} calls and a reactor round trip per recipient per
        turn, which dominate fan-out to many clients. A socket with room in
        its buffer (the usual case) takes the data at once. Anything it does
        not take goes through the transport as usual, which keeps ordering,
        error handling and the producer API intact.
        """
        transport = cast(tcp.Connection, self.transport)
        if (
            transport._tempDataLen
            or transport.dataBuffer
            or transport.disconnecting
            or not transport.connected
        ):
            return data
        try:
            sent = sock.send(data)
        except OSError:
            # Would block, or the connection is failing: the transport
            # finds out which and reports it in the usual way.
            return data
        return data[sent:] if sent < len(data) else b""

    def close(self) -> None:
        transport = self.transport
        assert transport is not None
        # Hand the transport whatever is still held, and stop producing:
        # TLS sends its close_notify only once no producer is registered,
        # and would otherwise hold the connection open until it is aborted.
        backlog = self._backlog
        if backlog.held:
            data = b"".join(backlog.held)
            backlog.held.clear()
            backlog.size = 0
            transport.write(data)
        backlog.paused = False
        if self._producing:
            self._producing = False
            cast(IConsumer, transport).unregisterProducer()
        transport.loseConnection()
        if self._abort_call is None:
            # A peer that never reads would keep a closing connection open
            # for ever; it gets a bounded time to take its last lines.
            self._abort_call = self.factory.reactor.callLater(
                CLOSE_GRACE, cast(ITCPTransport, transport).abortConnection
            )

    # IHalfCloseableProtocol

    def readConnectionLost(self) -> None:
        if self._buffer and self._reading and not self._discarding:
            # The last line of input need not end in a newline.
            buffer, self._buffer = self._buffer, b""
            self._stats.lines_received += 1
            self._accept([buffer])
        self._buffer = b""
        self._eof = True
        if not self._held and self._waiting is None:
            self._end_of_input()

    def _end_of_input(self) -> None:
        if self.member is not None and self.member.connected:
            self.registry.quit(self.member, "connection closed")
        else:
            self.close()

    def writeConnectionLost(self) -> None:
        self.close()

    def _cancel_release(self) -> None:
        if self._release_call is not None:
            self._release_call.cancel()
            self._release_call = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        self._cancel_release()
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        if self._counted:
            self._counted = False
            self.factory.release(self)
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


class Refusal(Protocol):
    """
    Says why a connection is refused, in one error line, and closes it.
    """

    def __init__(self, reason: str, stats: Stats) -> None:
        self.reason = reason
        self.stats = stats

    def connectionMade(self) -> None:
        assert self.transport is not None
        data = wire.encode(wire.error(self.reason))
        self.stats.bytes_out += len(data)
        self.transport.write(data)
        self.transport.loseConnection()


class ChatFactory(ServerFactory[ChatProtocol]):
    """
    Builds L{ChatProtocol}s and owns what they share across every listening
    port: the L{Registry}, the L{Limits}, and the count of connections.
    """

    protocol = ChatProtocol

    def __init__(
        self,
        reactor: IReactorTime | None = None,
        limits: Limits | None = None,
        history: History | None = None,
        replay: int = DEFAULT_REPLAY,
        stats: Stats | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = cast(IReactorTime, _reactor)
        self.reactor = reactor
        self.limits = Limits() if limits is None else limits
        self.stats = Stats() if stats is None else stats
        # Everything queued in one reactor turn is written in the next
        # iteration, one write per member.
        self.registry = Registry(
            schedule=lambda flush: reactor.callLater(0, flush),
            history=history,
            replay=replay,
            stats=self.stats,
        )
        # What commands act on; the service adds the accounts.
        self.chat = commands.Chat(self.registry)
        self.per_address: Counter[str] = Counter()
        self.accepting_input = True
        # Every counted connection still open, for shutdown to wait on.
        self.open: set[ChatProtocol] = set()
        self._all_closed: list[Deferred[None]] = []

    @property
    def connections(self) -> int:
        return len(self.open)

    def stop_input(self) -> None:
        """
        Ignore every line from now on: the server is stopping, and what was
        relayed until now is all that history must save.
        """
        self.accepting_input = False

    def buildProtocol(self, addr: IAddress) -> Protocol | None:  # type: ignore[override]
        key = address_key(addr)
        limits = self.limits
        if limits.max_clients and self.connections >= limits.max_clients:
            return self._refuse(
                addr,
                f"The server is full ({limits.max_clients} connections); "
                "try again later.",
                "max clients",
            )
        if (
            key is not None
            and limits.max_per_ip
            and self.per_address[key] >= limits.max_per_ip
        ):
            return self._refuse(
                addr,
                f"Too many connections from your address (the limit is "
                f"{limits.max_per_ip}); try again later.",
                "max per ip",
            )
        protocol = super().buildProtocol(addr)
        assert protocol is not None
        self.open.add(protocol)
        if key is not None:
            self.per_address[key] += 1
        protocol._address_key = key
        protocol._counted = True
        return protocol

    def _refuse(self, addr: IAddress, line: str, reason: str) -> Protocol:
        log.info("{peer} refused: {reason}", peer=addr, reason=reason)
        self.stats.refused[reason] += 1
        refusal = Refusal(line, self.stats)
        refusal.factory = self
        return refusal

    def release(self, protocol: ChatProtocol) -> None:
        """
        A counted connection has closed: its slot is free at once.
        """
        self.open.discard(protocol)
        key = protocol._address_key
        if key is not None:
            self.per_address[key] -= 1
            if not self.per_address[key]:
                del self.per_address[key]
        if not self.open:
            waiting, self._all_closed = self._all_closed, []
            for d in waiting:
                d.callback(None)

    def shut_down(self, grace: float) -> Deferred[None]:
        """
        Stop the chat: stop reading input, deliver what was said, tell
        everyone the server is going and close every connection. Fires when
        every connection has closed; connections that have not taken their
        last lines within C{grace} seconds are aborted.
        """
        self.stop_input()
        self.registry.close_all(wire.shutting_down())
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
            for protocol in list(self.open):
                cast(ITCPTransport, protocol.transport).abortConnection()

        closed.addTimeout(grace, self.reactor)
        closed.addErrback(abort_the_rest)
        return closed
