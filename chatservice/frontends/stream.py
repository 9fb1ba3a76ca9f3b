"""
What every front end over a byte stream (TCP, TLS, UNIX sockets) does for
its connections, whatever its protocol: framing lines, flood control, the
sendq, writing through to the socket, the idle timeout, the close grace,
refusing TLS on a plain port, and admission.

A front end subclasses L{StreamSession} and overrides L{StreamSession.start}
(join the chat) and L{StreamSession.lineReceived} (act on one line), as
L{twisted.protocols.basic.LineOnlyReceiver}'s subclasses override
C{lineReceived}; its factory subclasses L{StreamFactory} and names its
renderer.

The module is longer than most (about 600 lines) for one reason: a
connection's input side (framing, the flood bucket, lines held for a
command), its output side (the sendq, writing through) and its timers share
one connection's state, and splitting L{StreamSession} into mixins would
trade that for attributes declared in three places.
"""

from __future__ import annotations

import socket
from typing import cast

from twisted.internet import tcp
from twisted.internet.defer import Deferred
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
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from chatservice import _twisted_private
from chatservice.core import errors, events
from chatservice.core.accounts import Accounts
from chatservice.core.chat import Chat
from chatservice.core.flood import TokenBucket
from chatservice.core.rooms import Member
from chatservice.core.server_operators import ServerOperators
from chatservice.core.session import Renderer
from chatservice.core.stats import Stats
from chatservice.frontends.admission import Admission, Refusal
from chatservice.frontends.limits import Limits

# Seconds a connection being closed has to take its last output before it
# is aborted.
CLOSE_GRACE = 10.0

# How a TLS connection starts: a handshake record (22), version 3.x.
TLS_HANDSHAKE = b"\x16\x03"

# Marks the place of a line refused as too long in the queue of lines to
# handle, so that its error comes in order.
_TOO_LONG = None

log = Logger()


@implementer(IPushProducer)
class Backlog:
    """
    The sendq: what waits for a client that is not reading.

    Registered as the transport's streaming producer, it is paused when the
    socket's own buffer fills; output is then held here instead, up to the
    C{sendq} limit, and written when the transport drains.
    """

    __slots__ = ("held", "paused", "session", "size")

    def __init__(self, session: StreamSession) -> None:
        self.session = session
        self.paused = False
        self.held: list[bytes] = []
        self.size = 0

    def take(self) -> bytes:
        data = b"".join(self.held)
        self.held.clear()
        self.size = 0
        return data

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self.held:
            self.session.deliver(self.take())

    def stopProducing(self) -> None:
        self.held.clear()
        self.size = 0


class StreamFactory(ServerFactory["StreamSession"]):
    """
    Builds a front end's sessions for the one chat, through the one
    admission every front end shares.

    @cvar renderer: how this front end writes events; one for all its
        sessions.
    @param accounts: the accounts, if the server keeps them.
    @param limits: this front end's limits, if not the admission's.
    @param operators: the server operators, if any may be.
    """

    renderer: Renderer

    def __init__(
        self,
        chat: Chat,
        admission: Admission,
        accounts: Accounts | None = None,
        limits: Limits | None = None,
        operators: ServerOperators | None = None,
    ) -> None:
        self.chat = chat
        self.admission = admission
        self.accounts = accounts
        self.operators = operators
        self.limits = admission.limits if limits is None else limits
        self.reactor: IReactorTime = admission.reactor
        self.stats: Stats = admission.stats

    def buildProtocol(self, addr: IAddress) -> Protocol | None:  # type: ignore[override]
        refused = self.admission.refusal(addr)
        if refused is not None:
            refusal = Refusal(self.renderer.render(events.Refused(refused)), self.stats)
            refusal.factory = self
            return refusal
        protocol = super().buildProtocol(addr)
        assert isinstance(protocol, StreamSession)
        self.admission.admit(protocol, addr)
        return protocol


@implementer(IHalfCloseableProtocol)
class StreamSession(TimeoutMixin, Protocol):
    """
    One connection of a line-based front end, and the core's
    L{chatservice.core.session.Session} for it.

    Lines end in C{\\n}, with an optional C{\\r} before it, so that C{nc}
    (which sends bare C{\\n}) and telnet (C{\\r\\n}) both work. Framing is
    done here rather than by L{LineReceiver.dataReceived}, whose over-long
    line handling drops the connection and the rest of the buffer: an
    over-long line is refused with an error, and every line after it is
    still read. A chunk is split with one C{bytes.split}.

    Flood control: lines beyond the connection's token bucket are held and
    handled as tokens come back (IRC's "fake lag"); past C{flood_queue} held
    lines the client is told and disconnected. Other clients never wait for
    a flooder: its lines are handled only as its own tokens allow.

    End of input (a half-close, as C{nc -N} or C{chat-client} do at the end
    of piped input) is a quit: the server handles what remains, sends the
    replies, and then closes.
    """

    factory: StreamFactory
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
    # Why the server dropped the connection, once it has logged it.
    _dropped: str | None = None
    # The connection is being closed: input means nothing any more.
    _closing = False
    # The command this connection waits for, and the lines that came
    # meanwhile.
    _waiting: Deferred[None] | None = None
    _after_wait: list[bytes | None]

    # What a front end overrides

    def start(self) -> Member | None:
        """
        Join the chat, once the connection is made, and return the member;
        or return None, for a front end whose clients register first (IRC),
        and set L{member} when they have.
        """
        raise NotImplementedError()

    def lineReceived(self, line: bytes) -> Deferred[None] | None:
        """
        Act on one line of input, without its line ending. Return a
        Deferred to hold the connection's next lines until it fires.
        """
        raise NotImplementedError()

    def linesReceived(self, lines: list[bytes | None], start: int) -> int:
        """
        Act at once on as many lines from C{lines[start]} on as the front
        end can take together (a run of plain lines, say), and return the
        index of the first line left; C{start} leaves every line to
        L{lineReceived}. The lines still have their C{\\r}, and a line
        refused as too long is C{None}.
        """
        return start

    # The session the core sees

    @property
    def renderer(self) -> Renderer:
        return self.factory.renderer

    @property
    def chat(self) -> Chat:
        return self.factory.chat

    @property
    def limits(self) -> Limits:
        return self.factory.limits

    @property
    def peer(self) -> IAddress:
        return self.transport.getPeer()  # type: ignore[union-attr]

    @property
    def address(self) -> str:
        """
        The peer's IP address as text ("" if it has none, over a UNIX
        socket say): what the chat's address masks match.
        """
        host = getattr(self.peer, "host", "")
        return host.split("%", 1)[0] if isinstance(host, str) else ""

    @property
    def nick(self) -> str:
        """
        The member's nickname, or C{*} before it has one.
        """
        return "*" if self.member is None else self.member.nick

    @property
    def _reading(self) -> bool:
        """
        Whether input still means anything: not after the member has left
        or the connection is closing, nor once the server is stopping.
        """
        member = self.member
        return (
            member.connected if member is not None else not self._closing
        ) and self.factory.admission.accepting_input

    def tell(self, event: events.Event) -> None:
        """
        Tell the client C{event}, whether or not it is a member yet.
        """
        if self.member is not None:
            self.chat.tell(self.member, event)
        else:
            self.deliver(self.renderer.render_to("*", event))

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
        self.member = self.start()
        if limits.idle_timeout > 0:
            self.setTimeout(limits.idle_timeout)
        if self.member is not None:
            self.joined()

    def joined(self) -> None:
        """
        The connection is now the member L{member}: log it.
        """
        log.info("{peer} connected as {nick}", peer=self.peer, nick=self.nick)

    # Input

    def dataReceived(self, data: bytes) -> None:
        stats = self._stats
        stats.bytes_in += len(data)
        if not self._reading:
            return
        if self._first_data:
            self._first_data = False
            if data.startswith(TLS_HANDSHAKE):
                # A TLS client on a plain port: its handshake would
                # otherwise be relayed as lines of binary noise.
                self.drop(
                    errors.PlainPort(),
                    "TLS on a plain port",
                    "TLS handshake on a plain port",
                )
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
        # Once a line for every line received: the checks are written out
        # rather than called (what _reading and _too_long say).
        admission = self.factory.admission
        limit = self.limits.max_line
        index = 0
        while index < len(lines):
            # Read again each line: registering (IRC) makes the member.
            member = self.member
            if (
                not (member.connected if member is not None else not self._closing)
                or not admission.accepting_input
            ):
                return
            if self._waiting is not None:
                # A command is still at work: the rest waits for it.
                self._after_wait.extend(lines[index:])
                if len(self._after_wait) > self.limits.flood_queue:
                    self._excess_flood()
                return
            handled = self.linesReceived(lines, index)
            if handled > index:
                index = handled
                continue
            line = lines[index]
            index += 1
            if line is _TOO_LONG or (len(line) > limit and self._too_long(line)):
                self._refuse_long_line()
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            waiting = self.lineReceived(line)
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
        limit = self.limits.max_line
        log.info(
            "{peer} ({nick}) sent a line over {limit} bytes; dropped",
            peer=self.peer,
            nick=self.nick,
            limit=limit,
            reason="line too long",
        )
        self.tell(events.Refused(errors.LineTooLong(limit)))

    def drop(
        self,
        error: errors.ChatError,
        reason: str,
        why: str = "{reason}",
        warn: bool = False,
        **fields: object,
    ) -> None:
        """
        Disconnect the member for C{reason}: log it once (C{why} says it in
        the log, with C{fields}), tell the member C{error}, and let its rooms
        know.
        """
        member = self.member
        self._dropped = reason
        emit = log.warn if warn else log.info
        emit(
            "{peer} ({nick}) disconnected: " + why,
            peer=self.peer,
            nick=self.nick,
            reason=reason,
            **fields,
        )
        if member is None:
            self.tell(events.Refused(error))
            self.close()
        else:
            self.chat.dismiss(member, events.Refused(error), reason)

    def _excess_flood(self) -> None:
        held = len(self._held)
        self._held.clear()
        self._cancel_release()
        limits = self.limits
        self.drop(
            errors.ExcessFlood(limits.flood_queue, limits.flood_rate),
            "excess flood",
            "excess flood, {held} lines held",
            warn=True,
            held=held,
        )

    def timeoutConnection(self) -> None:
        if not self._reading:
            return
        if self._held:
            # Lines held by flood control are input not yet handled, not
            # silence.
            self.setTimeout(self.limits.idle_timeout)
            return
        seconds = self.limits.idle_timeout
        self.drop(
            errors.IdleTimeout(seconds),
            "idle timeout",
            "idle for {seconds} seconds",
            seconds=seconds,
        )

    def _sendq_exceeded(self) -> None:
        self._dropped = "sendq exceeded"
        log.warn(
            "{peer} ({nick}) disconnected: SendQ exceeded, {size} bytes waiting",
            peer=self.peer,
            nick=self.nick,
            size=self._backlog.size,
            reason="sendq exceeded",
        )
        self._backlog.stopProducing()
        self._stats.sendq_disconnects += 1
        if self.member is not None:
            self.chat.disconnect(self.member, "SendQ exceeded")
        self.abort()

    # Output: the core's Session

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
            _twisted_private.has_buffered(transport)
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
        self._closing = True
        # Hand the transport whatever is still held, and stop producing:
        # TLS sends its close_notify only once no producer is registered,
        # and would otherwise hold the connection open until it is aborted.
        backlog = self._backlog
        if backlog.held:
            transport.write(backlog.take())
        backlog.paused = False
        if self._producing:
            self._producing = False
            cast(IConsumer, transport).unregisterProducer()
        self.hang_up()
        if self._abort_call is None:
            # A peer that never reads would keep a closing connection open
            # for ever; it gets a bounded time to take its last output.
            self._abort_call = self.factory.reactor.callLater(CLOSE_GRACE, self.abort)

    def hang_up(self) -> None:
        """
        Close the transport once what was written has been sent: a
        protocol that says goodbye on the wire first (a WebSocket's close
        frame) overrides this.
        """
        self.transport.loseConnection()  # type: ignore[union-attr]

    def abort(self) -> None:
        """
        Drop the connection at once.
        """
        cast(ITCPTransport, self.transport).abortConnection()

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
            self.chat.quit(self.member, "connection closed")
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
        self.factory.admission.release(self)
        if self.member is not None and self.member.connected:
            self.chat.disconnect(self.member, "connection lost")
        if self._dropped is None:
            log.info(
                "{peer} ({nick}) disconnected: {reason}",
                peer=self.peer,
                nick=self.nick,
                reason=reason.getErrorMessage(),
            )
