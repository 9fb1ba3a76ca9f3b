"""
C{chat-client --reconnect}: stay in the chat across lost connections.

L{SessionState} follows the session (nickname, login, rooms) from the
server's own replies. Lines starting C{*** } come only from the server (other
people's lines always start with C{[ROOM]} or C{*NICK*}), so nobody else can
make the client believe it is in a room or logged in. L{ReconnectingLink}
keeps one connection at a time with L{ClientService}, and after a loss
reconnects with growing delays, restores the session with the commands a
user would type, then sends what was typed meanwhile.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

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
from chatservice.client.tls import describe_tls_failure

# Lines typed while disconnected that are kept to be sent on reconnecting.
# They go out at once, with the restoring commands, so they must fit in
# what the server's default flood control takes without disconnecting
# (a burst of 20 and 100 held).
QUEUE_LIMIT = 80

# A typed line longer than this is sent as it stands, unfinished, rather
# than held whole: the server refuses lines much shorter anyway.
PARTIAL_LIMIT = 65536

GUEST = re.compile(r"guest\d+", re.IGNORECASE)

_WELCOME = re.compile(r"\*\*\* Welcome to chatservice, ([^\s!]+)! You are in (\S+?)\.")
_KNOWN_AS = re.compile(r"\*\*\* You are now known as (\S+)\.")
_TALKING = re.compile(r"\*\*\* Now talking in (\S+?)(?: \(\d+ members?\))?\.")
_LEFT = re.compile(
    r"\*\*\* You left (\S+?); (?:now talking in (\S+?)\.|you are in no room now;.*)"
)
_REGISTERED = re.compile(r"\*\*\* (\S+) is registered to you, and you are logged in\.")
_LOGGED_IN = re.compile(r"\*\*\* You are logged in as (\S+)\.")
_LOGGED_OUT = "*** You are logged out."
_DISPLACED = re.compile(r"\*\*\* (\S+) has logged in from elsewhere; you are renamed\.")
_PASSWORD_CHANGED = "*** Your password is changed."
_SHUTTING_DOWN = "*** The server is shutting down. Goodbye."

# Commands that change what a reconnection restores.
_SESSION_COMMANDS = {"/nick", "/join", "/part", "/login", "/logout", "/register"}


def fold(name: str) -> str:
    """
    A name as the server compares names: NFKC-normalized and case-folded.
    """
    return unicodedata.normalize("NFKC", name).casefold()


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


@dataclass(frozen=True)
class Snapshot:
    """
    The session as it stood when a connection was lost: what to restore.
    """

    nick: str | None = None
    rooms: tuple[str, ...] = ()
    current: str | None = None
    account: str | None = None
    password: str | None = None
    start_room: str = "lobby"

    @property
    def restores_nick(self) -> bool:
        return self.nick is not None and not GUEST.fullmatch(self.nick)

    @property
    def logs_in(self) -> bool:
        return self.account is not None and self.password is not None

    def commands(self) -> list[str]:
        """
        The lines that bring a new connection (a guest in C{start_room}) back
        to this session; none for a session the server never welcomed
        (one refused as full, say), which has nothing to restore.
        """
        if self.nick is None:
            return []
        commands = []
        if self.logs_in:
            commands.append(f"/login {self.account} {self.password}")
        if self.restores_nick and not (
            self.logs_in and fold(self.nick or "") == fold(self.account or "")
        ):
            commands.append(f"/nick {self.nick}")
        start = fold(self.start_room)
        others = [room for room in self.rooms if fold(room) != start]
        commands += [f"/join {room}" for room in others]
        # The server's current room after these: the last one joined.
        current: str | None = others[-1] if others else self.start_room
        if len(others) == len(self.rooms):
            commands.append(f"/part {self.start_room}")
            if current is not None and fold(current) == start:
                current = None
        if self.current is not None and (
            current is None or fold(current) != fold(self.current)
        ):
            commands.append(f"/join {self.current}")
        return commands

    def reached_by(self, state: Snapshot) -> bool:
        """
        Whether C{state} is this session restored: same rooms, current room
        and login, and the same nickname if this one was not a guest's.
        """
        return (
            {fold(room) for room in state.rooms} == {fold(room) for room in self.rooms}
            and fold(state.current or "") == fold(self.current or "")
            and fold(state.account or "") == fold(self.account or "")
            and (
                not self.restores_nick
                or fold(state.nick or "") == fold(self.nick or "")
            )
        )

    def describe(self) -> str:
        """
        What is being restored, for the user.
        """
        parts = []
        if self.restores_nick or self.logs_in:
            nick = self.nick if self.restores_nick else self.account
            parts.append(f"nickname {nick}" + (" (logging in)" if self.logs_in else ""))
        parts.append(f"rooms {', '.join(self.rooms)}" if self.rooms else "no rooms")
        return ", ".join(parts)


class SessionState:
    """
    The session as the server has described it: nickname, rooms (in the
    order joined), current room, and the account logged in to.

    The password of the account is remembered, in memory only, from the
    user's own C{/login}, C{/register} or C{/password} line, and kept only
    once the server has confirmed it; so a mistyped password is never
    replayed.
    """

    def __init__(self) -> None:
        self.nick: str | None = None
        self.rooms: list[str] = []
        self.current: str | None = None
        self.account: str | None = None
        self.password: str | None = None
        self.start_room = "lobby"
        self._login_passwords: dict[str, str] = {}
        self._register_password: str | None = None
        self._new_password: str | None = None

    def snapshot(self) -> Snapshot:
        return Snapshot(
            nick=self.nick,
            rooms=tuple(self.rooms),
            current=self.current,
            account=self.account,
            password=self.password if self.account is not None else None,
            start_room=self.start_room,
        )

    def user_line(self, line: str) -> None:
        """
        The user typed C{line}: note a password it proposes.
        """
        words = line.split()
        if not words:
            return
        command = words[0].lower()
        if command == "/login" and len(words) == 3:
            self._login_passwords[fold(words[1])] = words[2]
        elif command == "/register" and len(words) == 2:
            self._register_password = words[1]
        elif command == "/password" and len(words) == 3:
            self._new_password = words[2]

    def server_line(self, line: str) -> None:
        """
        The server sent C{line} (without its line ending).
        """
        if not line.startswith("*** "):
            return
        if match := _WELCOME.match(line):
            self.nick, room = match.groups()
            self.start_room = room
            self.rooms = [room]
            self.current = room
            self.account = None
        elif match := _KNOWN_AS.fullmatch(line):
            self.nick = match.group(1)
        elif match := _TALKING.fullmatch(line):
            room = match.group(1)
            if not self._in(room):
                self.rooms.append(room)
            self.current = room
        elif match := _LEFT.fullmatch(line):
            left, now = match.groups()
            self.rooms = [room for room in self.rooms if fold(room) != fold(left)]
            self.current = now
        elif match := _REGISTERED.fullmatch(line):
            self.account = match.group(1)
            self.password, self._register_password = self._register_password, None
        elif match := _LOGGED_IN.fullmatch(line):
            self.account = match.group(1)
            self.password = self._login_passwords.pop(fold(self.account), None)
        elif line == _PASSWORD_CHANGED and self._new_password is not None:
            self.password, self._new_password = self._new_password, None
        elif line == _LOGGED_OUT or _DISPLACED.fullmatch(line):
            # Displaced by another login as our name: logging in again on
            # reconnecting would displace that session in turn.
            self.account = None
            self.password = None

    def _in(self, room: str) -> bool:
        return any(fold(room) == fold(joined) for joined in self.rooms)


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
        self._target: Snapshot | None = None
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
        if words and words[0].lower() in _SESSION_COMMANDS:
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
            if not _WELCOME.match(text):
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

    def _restore(self, snapshot: Snapshot) -> None:
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
        if self._last_line == _SHUTTING_DOWN:
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
