"""
Shared helpers for the integration, end-to-end and client tests.

  - L{LineClient} and L{LoopbackChat}: a real L{LineFactory} on a loopback
    TCP port in this process, with raw line clients, for trial tests on the
    real reactor.
  - L{ServerProcess} and L{SocketClient}: the installed C{twistd chat} as a
    subprocess, driven by blocking sockets, for the end-to-end tests;
    L{irc_server} starts it with an IRC listener too.
"""

from __future__ import annotations

import functools
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from twisted.internet import defer, endpoints, reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.logger import LogEvent, globalLogPublisher
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from chatservice.core.chat import Chat
from chatservice.core.stats import Stats
from chatservice.frontends.admission import Admission
from chatservice.frontends.limits import Limits
from chatservice.frontends.line.protocol import LineFactory, LineProtocol

# How long any single wait in these tests may take before it is a failure.
TIMEOUT = 5.0

Match = str | re.Pattern[str] | Callable[[str], bool]


def _matcher(match: Match) -> Callable[[str], bool]:
    if isinstance(match, str):
        return lambda line: line == match
    if isinstance(match, re.Pattern):
        return lambda line: match.search(line) is not None
    return match


def deferred_test(
    f: Callable[..., Coroutine[Any, Any, object]],
) -> Callable[..., Deferred[object]]:
    """
    Turn an C{async def} test method into one that returns a L{Deferred},
    which trial's L{twisted.trial.unittest.TestCase} waits for.
    """

    @functools.wraps(f)
    def wrapper(*args: object, **kwargs: object) -> Deferred[object]:
        return Deferred.fromCoroutine(f(*args, **kwargs))

    return wrapper


# Log events


def capture_events(testcase: SynchronousTestCase) -> list[LogEvent]:
    """
    Every log event emitted until the end of C{testcase}.
    """
    events: list[LogEvent] = []
    observer = events.append
    globalLogPublisher.addObserver(observer)
    testcase.addCleanup(globalLogPublisher.removeObserver, observer)
    return events


def with_format(events: list[LogEvent], format: str) -> list[LogEvent]:
    return [e for e in events if e.get("log_format") == format]


# In-process loopback


class LineClient(LineReceiver):
    """
    A raw test client: collects the CRLF-terminated lines the server sends
    and lets a test wait for the next one matching something.
    """

    delimiter = b"\r\n"

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._cursor = 0
        self._waiter: tuple[Callable[[str], bool], Deferred[str]] | None = None
        self._lost_waiters: list[Deferred[None]] = []
        self.lost_reason: Failure | None = None

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line.decode("utf-8"))
        if self._waiter is not None:
            predicate, d = self._waiter
            if predicate(self.lines[-1]):
                self._waiter = None
                self._cursor = len(self.lines)
                d.callback(self.lines[-1])

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost_reason = reason
        waiters, self._lost_waiters = self._lost_waiters, []
        for d in waiters:
            d.callback(None)

    def send(self, *lines: str) -> None:
        """
        Send each of C{lines}, CRLF-terminated, in one write.
        """
        assert self.transport is not None
        self.transport.write(b"".join(line.encode("utf-8") + b"\r\n" for line in lines))

    def unread(self) -> list[str]:
        """
        The lines received after the last one a wait returned.
        """
        return self.lines[self._cursor :]

    def next_line(self, match: Match, timeout: float = TIMEOUT) -> Deferred[str]:
        """
        The first line after the last one waited for that matches C{match}
        (a whole line, a regular expression to search for, or a predicate).
        Lines skipped over are not seen again by later waits.
        """
        assert self._waiter is None, "already waiting for a line"
        predicate = _matcher(match)
        for index in range(self._cursor, len(self.lines)):
            if predicate(self.lines[index]):
                self._cursor = index + 1
                return defer.succeed(self.lines[index])

        def cancel(d: Deferred[str]) -> None:
            self._waiter = None

        def timed_out(result: object, timeout: float) -> Failure:
            return Failure(
                defer.TimeoutError(
                    f"no line matching {match!r} within {timeout}s; "
                    f"received {self.lines!r}"
                )
            )

        d: Deferred[str] = Deferred(cancel)
        self._waiter = (predicate, d)
        d.addTimeout(timeout, reactor, onTimeoutCancel=timed_out)
        return d

    def when_lost(self, timeout: float = TIMEOUT) -> Deferred[None]:
        """
        Fires when the connection has ended.
        """
        if self.lost_reason is not None:
            return defer.succeed(None)
        d: Deferred[None] = Deferred()
        self._lost_waiters.append(d)
        d.addTimeout(timeout, reactor)
        return d


class TrackedLineProtocol(LineProtocol):
    """
    The real protocol; it only tells its factory when its connection ends,
    so that a test can wait for the server side to be gone too.
    """

    factory: TrackedLineFactory

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        try:
            super().connectionLost(reason)
        finally:
            self.factory.lost(self)


class TrackedLineFactory(LineFactory):
    protocol = TrackedLineProtocol

    def __init__(self, limits: Limits | None = None) -> None:
        stats = Stats()
        chat = Chat(schedule=lambda flush: reactor.callLater(0, flush), stats=stats)
        limits = Limits() if limits is None else limits
        super().__init__(chat, Admission(limits, stats, reactor))
        self.tracked: set[LineProtocol] = set()
        self._lost_waiters: dict[LineProtocol, Deferred[None]] = {}

    def buildProtocol(self, addr: object) -> Protocol:
        protocol = super().buildProtocol(addr)  # type: ignore[arg-type]
        assert protocol is not None
        # Refused connections are not chat connections; they report nothing.
        if isinstance(protocol, LineProtocol):
            self.tracked.add(protocol)
        return protocol

    def lost(self, protocol: LineProtocol) -> None:
        self.tracked.discard(protocol)
        d = self._lost_waiters.pop(protocol, None)
        if d is not None:
            d.callback(None)

    def all_closed(self) -> Deferred[list[None]]:
        waits: list[Deferred[None]] = []
        for protocol in self.tracked:
            d = self._lost_waiters.setdefault(protocol, Deferred())
            waits.append(d)
        return defer.gatherResults(waits).addTimeout(TIMEOUT, reactor)


class LoopbackChat:
    """
    A chat server on 127.0.0.1 and a random port in this process, with
    clients connected to it over real TCP. Everything is closed, and waited
    for, in the test's cleanup.
    """

    def __init__(
        self, testcase: SynchronousTestCase, limits: Limits | None = None
    ) -> None:
        self.testcase = testcase
        self.factory = TrackedLineFactory(limits)
        self.clients: list[LineClient] = []
        self.port: Any = None

    async def start(self) -> LoopbackChat:
        endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        self.port = await endpoint.listen(self.factory)
        self.testcase.addCleanup(lambda: Deferred.fromCoroutine(self.stop()))
        return self

    @property
    def port_number(self) -> int:
        return int(self.port.getHost().port)

    async def connect(self, welcome: bool = True) -> LineClient:
        """
        Connect a new client, and (by default) wait for its welcome line so
        that the server has registered it before the test goes on.
        """
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", self.port_number)
        client = LineClient()
        await endpoints.connectProtocol(endpoint, client).addTimeout(TIMEOUT, reactor)
        self.clients.append(client)
        if welcome:
            await client.next_line(re.compile(r"^\*\*\* Welcome to chatservice, "))
        return client

    async def stop(self) -> None:
        for client in self.clients:
            if client.lost_reason is None and client.transport is not None:
                client.transport.loseConnection()
        for client in self.clients:
            await client.when_lost()
        await self.factory.all_closed()
        # A member leaving schedules a delivery for the next reactor turn;
        # let it run so that no delayed call outlives the test.
        flush = self.factory.chat.fanout.flush
        for _ in range(10):
            if not any(call.func == flush for call in reactor.getDelayedCalls()):
                break
            await deferLater(reactor, 0, lambda: None)
        await self.port.stopListening()


# Subprocesses


BIN = Path(sys.executable).parent
TWISTD = BIN / "twistd"
CHAT_CLIENT = BIN / "chat-client"

_LISTENING = re.compile(rb"Chat server listening on (\w+Address\(.*\))")
_TCP_PORT = re.compile(rb"IPv4Address\(type='TCP', host='127\.0\.0\.1', port=(\d+)\)")
_IRC_LISTENING = re.compile(rb"IRC server listening on .*port=(\d+)")


def read_until(
    stream: Any, pattern: re.Pattern[bytes], count: int = 1, timeout: float = 10.0
) -> tuple[list[re.Match[bytes]], bytes]:
    """
    Read the pipe C{stream} until C{pattern} has matched C{count} lines, or
    fail at the deadline or at end of file. Returns the matches and all the
    bytes read.
    """
    fd = stream.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        matches = [m for m in map(pattern.search, data.splitlines(True)) if m]
        if len(matches) >= count:
            return matches, data
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out waiting for {pattern.pattern!r}: {data!r}")
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(
                    f"end of output before {pattern.pattern!r}: {data!r}"
                )
            data += chunk


def make_temp_dir(testcase: SynchronousTestCase) -> Path:
    path = Path(tempfile.mkdtemp(prefix="chat-test-"))
    testcase.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """
    Terminate C{process} (if it still runs) and reap it; kill it if it does
    not go.
    """
    if process.stdin is not None:
        if not process.stdin.closed:
            process.stdin.close()
        # communicate() would flush it.
        process.stdin = None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


class ServerProcess:
    """
    The installed C{twistd -n chat} listening on C{ports}, in a temporary
    directory, stopped in the test's cleanup. C{options} are further
    C{twistd chat} options (C{--database PATH}, say).

    @ivar addresses: the logged listening addresses, in the order logged.
    @ivar tcp_port: the port number of the first TCP listener.
    """

    def __init__(
        self,
        testcase: SynchronousTestCase,
        *ports: str,
        options: Sequence[str] = (),
    ) -> None:
        self.directory = make_temp_dir(testcase)
        ports = ports or ("tcp:0:interface=127.0.0.1",)
        args = [str(TWISTD), "-n", "chat"]
        for port in ports:
            args += ["--port", port]
        args += options
        self.process = subprocess.Popen(
            args,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        testcase.addCleanup(stop_process, self.process)
        assert self.process.stdout is not None
        matches, self.output = read_until(self.process.stdout, _LISTENING, len(ports))
        self.addresses = [m.group(1).decode() for m in matches]
        ports_found = [_TCP_PORT.search(m.group(1)) for m in matches]
        tcp = [int(m.group(1)) for m in ports_found if m]
        self.tcp_port = tcp[0] if tcp else None

    def logged(
        self, pattern: re.Pattern[bytes], count: int = 1
    ) -> list[re.Match[bytes]]:
        """
        The first C{count} lines of the server's log that match C{pattern}
        (a listener it announced, say), reading more of the log as needed.
        """
        found = [m for m in map(pattern.search, self.output.splitlines()) if m]
        if len(found) < count:
            assert self.process.stdout is not None
            more, data = read_until(self.process.stdout, pattern, count - len(found))
            self.output += data
            found += more
        return found[:count]

    def stop(self) -> bytes:
        """
        SIGTERM the server and wait for it to exit; returns the rest of its
        output.
        """
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=10)
        return out


def irc_server(testcase: SynchronousTestCase) -> tuple[ServerProcess, int]:
    """
    The installed server with an IRC listener too, named C{My.Little.Server}
    and keeping nothing on disk; returns it and the IRC port.
    """
    server = ServerProcess(
        testcase,
        options=[
            "--irc-port",
            "tcp:0:interface=127.0.0.1",
            "--irc-server-name",
            "My.Little.Server",
            "--database",
            ":memory:",
        ],
    )
    [found] = server.logged(_IRC_LISTENING)
    return server, int(found.group(1))


class SocketClient:
    """
    A blocking socket connected to the server, every operation bounded by a
    timeout, reading CRLF-terminated lines as raw bytes. It connects to
    127.0.0.1:C{port} or the UNIX socket C{path}, or takes C{sock}, a socket
    connected already (over IPv6 or TLS, say).

    @ivar sent: bytes sent.
    @ivar received: bytes received.
    """

    def __init__(
        self,
        testcase: SynchronousTestCase,
        port: int | None = None,
        path: str | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        if sock is None and path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(TIMEOUT)
            try:
                sock.connect(path)
            except BaseException:
                sock.close()
                raise
        elif sock is None:
            assert port is not None
            sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        sock.settimeout(TIMEOUT)
        self.sock = sock
        testcase.addCleanup(self.sock.close)
        self._buffer = b""
        self.seen: list[bytes] = []
        self.sent = 0
        self.received = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        self.received += len(chunk)
        return chunk

    def read_line(self) -> bytes:
        """
        The next line, with its line ending.
        """
        while b"\n" not in self._buffer:
            chunk = self._recv()
            if not chunk:
                raise AssertionError(
                    f"connection closed; read {self.seen!r} then {self._buffer!r}"
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        self.seen.append(line + b"\n")
        return line + b"\n"

    def read_until(self, predicate: Callable[[bytes], bool]) -> bytes:
        """
        Skip lines until one satisfies C{predicate}, and return it.
        """
        while True:
            line = self.read_line()
            if predicate(line):
                return line

    def welcome(self) -> str:
        """
        Read the welcome line and return the guest nickname it gives.
        """
        line = self.read_line()
        match = re.fullmatch(
            rb"\*\*\* Welcome to chatservice, (guest\d+)! .*\r\n", line
        )
        assert match is not None, line
        return match.group(1).decode()

    def read_to_end(self) -> bytes:
        """
        Everything until the server closes the connection.
        """
        data, self._buffer = self._buffer, b""
        while True:
            chunk = self._recv()
            if not chunk:
                return data
            data += chunk
