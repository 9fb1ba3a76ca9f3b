"""
C{chat-client --reconnect}: stay in the chat across lost connections.

L{ReconnectingLink} keeps one connection at a time with L{ClientService}.
After a loss it reconnects with growing delays and, once the server has
welcomed the new connection, restores the session (followed by
L{chatservice.client.session_state.SessionState}) with the commands a user
would type, then sends what was typed meanwhile. It gives up only on what
would fail again the same way: a TLS handshake that failed.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from chatservice.client.connection import (
    HeldOutput,
    ServerConnection,
    describe_end,
    is_quit,
)
from chatservice.client.session_state import (
    SESSION_COMMANDS,
    SHUTTING_DOWN,
    SessionSnapshot,
    SessionState,
    is_welcome,
)
from chatservice.client.tls import describe_tls_failure

# Lines typed while disconnected that are kept to be sent on reconnecting.
# They go out at once, with the restoring commands, so they must fit in
# what the server's default flood control takes without disconnecting
# (a burst of 20 and 100 held).
QUEUE_LIMIT = 80

# A typed line longer than this is sent as it stands, unfinished, rather
# than held whole: the server refuses lines much shorter anyway.
PARTIAL_LIMIT = 65536


def default_policy() -> Callable[[int], float]:
    """
    Delays between attempts: about half a second, doubling up to half a
    minute, with up to half a second of jitter so that the clients of a
    restarted server do not all come back in the same instant.
    """
    return backoffPolicy(
        initialDelay=0.25,
        maxDelay=30.0,
        factor=2.0,
        jitter=lambda: random.random() * 0.5,
    )


@implementer(IStreamClientEndpoint)
class _NoticingEndpoint:
    """
    An endpoint that tells its link why an attempt failed, before
    L{ClientService} schedules the next one.
    """

    def __init__(
        self, endpoint: IStreamClientEndpoint, failed: Callable[[Failure], None]
    ) -> None:
        self._endpoint = endpoint
        self._failed = failed

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        def failed(reason: Failure) -> Failure:
            self._failed(reason)
            return reason

        connecting: Deferred[IProtocol] = self._endpoint.connect(protocolFactory)
        return connecting.addErrback(failed)


class _LinkedConnection(ServerConnection):
    def __init__(self, link: ReconnectingLink) -> None:
        super().__init__()
        self._link = link
        self.print_to(link._server_output)

    def connectionMade(self) -> None:
        self._link._connection_made(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self._link._connection_lost(self)


class _LinkFactory(Factory[_LinkedConnection]):
    def __init__(self, link: ReconnectingLink) -> None:
        self.link = link

    def buildProtocol(self, addr: IAddress | None) -> _LinkedConnection:
        protocol = _LinkedConnection(self.link)
        protocol.factory = self
        return protocol


class ReconnectingLink:
    """
    A L{chatservice.client.connection.Link} that reconnects when the
    connection is lost without the user having quit or input having ended.

    @ivar connected_once: fires with C{True} on the first connection, or
        C{False} if the link gave up before ever connecting.
    @ivar done: fires with the exit status once the session is over.
    @ivar complain: says something to the user (on standard error).
    """

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        description: str,
        complain: Callable[[str], None],
        clock: IReactorTime,
        tls_server: str | None = None,
        retry_policy: Callable[[int], float] | None = None,
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        self.description = description
        self.complain = complain
        self.tls_server = tls_server
        self.state = SessionState()
        self.connected_once: Deferred[bool] = Deferred()
        self.done: Deferred[int] = Deferred()
        self._policy = retry_policy or default_policy()
        self._queue: deque[bytes] = deque()
        self._queue_limit = queue_limit
        self._dropped = 0
        self._partial = b""
        self._output_partial = b""
        self._output = HeldOutput()
        self.print_to = self._output.print_to
        self._connection: ServerConnection | None = None
        self._reconnecting = False
        # The session being restored, until the server's replies show it is.
        self._target: SessionSnapshot | None = None
        self._last_line = ""
        self._ended = False
        self._finished = False
        self._failure: Failure | None = None
        self._attempts = 0
        self._service = ClientService(
            _NoticingEndpoint(endpoint, self._attempt_failed),
            _LinkFactory(self),
            retryPolicy=self._delay,
            clock=clock,
        )

    def start(self) -> None:
        self._service.startService()

    # Link

    def send(self, data: bytes) -> None:
        """
        Whole lines go to the server, or wait in the queue while there is no
        connection; a line is never split across two connections.
        """
        if self._finished:
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._send_line(line + b"\n")
            if self._finished:
                return
        if len(self._partial) > PARTIAL_LIMIT and self._connection is not None:
            self._connection.send(self._partial)
            self._partial = b""

    def end_input(self) -> None:
        if self._finished:
            return
        self._ended = True
        if self._connection is not None and not self._reconnecting:
            if self._partial:
                # The last line need not end in a newline.
                self._send_line(self._partial)
                self._partial = b""
            self._connection.end_input()
            return
        unsent = len(self._queue) + (1 if self._partial.strip() else 0)
        self.complain(
            f"input ended while disconnected from {self.description}; "
            f"{_lines(unsent)} not sent"
        )
        self._finish(1)

    def abandon(self) -> None:
        """
        The client is being stopped (Ctrl-C): end without a word, status 1.
        """
        if not self._finished:
            self._finish(1)

    def close(self) -> None:
        if self._finished:
            return
        self._ended = True
        if self._connection is not None:
            self._connection.close()
        else:
            self._finish(0)

    # Lines typed

    def _send_line(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        self.state.user_line(text)
        words = text.split(None, 1)
        if words and words[0].lower() in SESSION_COMMANDS:
            # The user changes the session: what the server makes of that
            # is the session to keep, not the one being restored.
            self._target = None
        quitting = is_quit(line)
        if self._connection is not None and not self._reconnecting:
            self._connection.send(line)
            if quitting:
                self._ended = True
            return
        if quitting:
            self._ended = True
            unsent = len(self._queue)
            if unsent:
                self.complain(
                    f"quitting while disconnected; {_lines(unsent)} typed "
                    "meanwhile not sent"
                )
            self._finish(1 if unsent else 0)
            return
        if len(self._queue) >= self._queue_limit:
            if not self._dropped:
                self.complain(
                    f"{_lines(self._queue_limit)} wait to be sent; "
                    "lines typed from now until reconnected are dropped"
                )
            self._dropped += 1
            return
        self._queue.append(line)

    # What the server sends

    def _server_output(self, data: bytes) -> None:
        self._output.write(data)
        lines = (self._output_partial + data).split(b"\n")
        self._output_partial = lines.pop()[-PARTIAL_LIMIT:]
        for line in lines:
            text = self._last_line = line.decode("utf-8", "replace")
            if not is_welcome(text):
                self.state.server_line(text)
                continue
            # Only a welcome shows the server took us in (a full server
            # accepts and closes): the backoff starts again from here, and
            # a lost session is restored from here.
            self._attempts = 0
            if self._reconnecting:
                self._reconnecting = False
                snapshot = self._target or self.state.snapshot()
                self.state.server_line(text)
                self._restore(snapshot)
            else:
                self.state.server_line(text)
        if lines and self._target is not None:
            if self._target.reached_by(self.state.snapshot()):
                self._target = None

    # The connection

    def _connection_made(self, connection: ServerConnection) -> None:
        self._connection = connection
        self._output_partial = b""
        self._last_line = ""
        if not self.connected_once.called:
            self.connected_once.callback(True)

    def _restore(self, snapshot: SessionSnapshot) -> None:
        """
        Bring the new connection back to C{snapshot}: what was being
        restored when the last connection was lost, if it was, rather than
        the half-restored session.
        """
        connection = self._connection
        assert connection is not None
        self._target = snapshot
        message = f"reconnected to {self.description}; restoring {snapshot.describe()}"
        queued, self._queue = self._queue, deque()
        if queued:
            message += f"; sending {_lines(len(queued))} typed meanwhile"
        if self._dropped:
            message += f" ({self._dropped} dropped)"
            self._dropped = 0
        self.complain(message)
        for command in snapshot.commands():
            connection.send(command.encode("utf-8") + b"\n")
        for line in queued:
            connection.send(line)

    def _connection_lost(self, connection: ServerConnection) -> None:
        self._connection = None
        if self._output_partial:
            # Keep the next connection's first line on a line of its own.
            self._output.write(b"\n")
            self._output_partial = b""
        if self._finished:
            return
        reason = connection.reason
        if self.tls_server is not None:
            failed = describe_tls_failure(reason, self.tls_server)
            if failed is not None:
                # A certificate that does not verify will not verify next
                # time either; and retrying would hide the problem.
                self.complain(failed)
                self._finish(1)
                return
        if self._ended:
            status, message = describe_end(connection, True, self.tls_server)
            if message is not None:
                self.complain(message)
            self._finish(status)
            return
        if self._last_line == SHUTTING_DOWN:
            why = "the server is shutting down"
        elif reason.check(ConnectionDone):
            why = "the server closed the connection"
        else:
            why = reason.getErrorMessage().rstrip(".")
        self.complain(f"connection lost ({why}); reconnecting...")
        self._reconnecting = True

    def _attempt_failed(self, reason: Failure) -> None:
        self._failure = reason

    def _delay(self, attempt: int) -> float:
        """
        The retry policy, which L{ClientService} asks just after a loss or a
        failed attempt: a failed attempt is reported with the delay.
        """
        # ClientService counts attempts from the last connection made, and a
        # server that accepts and closes at once would never be backed off
        # from; the welcome line resets this count instead.
        self._attempts += 1
        delay = self._policy(self._attempts)
        failure, self._failure = self._failure, None
        if failure is not None:
            self.complain(
                f"cannot connect to {self.description}: "
                f"{str(failure.value).rstrip('.')}; "
                f"trying again in {delay:.1f} s"
            )
        return delay

    def _finish(self, status: int) -> None:
        self._finished = True
        if not self.connected_once.called:
            self.connected_once.callback(False)
        stopped = self._service.stopService()
        stopped.addBoth(lambda _: self.done.callback(status))


def _lines(count: int) -> str:
    return f"{count} line" if count == 1 else f"{count} lines"
