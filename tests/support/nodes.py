"""
Real cluster nodes for the end-to-end tests of several processes (issue 15):
the installed C{twistd chat} with C{--redis} and a PostgreSQL C{--database},
driven over blocking sockets, and the services they need.

  - L{Node} and L{Cluster}: C{twistd -n chat --node-id nK --redis ...}
    processes with short timers (L{TIMERS}), each on its own loopback port,
    sharing one key prefix in Redis and one PostgreSQL schema that no other
    test uses (L{fresh_prefix}, L{tests.support.postgres.fresh_url}).
  - L{User}: a line-protocol client that keeps every line it read, so a
    test can wait for one (bounded), and compare whole sequences.
  - L{PrivateRedis} and L{PrivatePostgres}: a Redis server or a PostgreSQL
    cluster of the test's own, for the tests that stop and start them.
  - L{redis_command}: one command over RESP on the test Redis's UNIX socket,
    to do to Redis what the test needs (C{CLIENT KILL TYPE pubsub}).

Every wait has a deadline; a process that is slow to start, or a line that
never comes, fails the test with what was read instead.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from chatservice.bench.services import find_postgres_bindir, redis_server_argv
from tests.support.helpers import (
    _IRC_LISTENING,
    _TCP_PORT,
    TIMEOUT,
    TWISTD,
    Match,
    _matcher,
    make_temp_dir,
)
from tests.support.postgres import fresh_url
from tests.support.services import redis_endpoint

# The cluster's timers, short: a node beats every 0.2 s, is lost after 1 s
# of silence, and holds its names for 1.5 s, fencing itself 0.5 s before.
HEARTBEAT = 0.2
DEAD_AFTER = 1.0
LEASE = 1.5
LEASE_MARGIN = 0.5
TIMERS = (
    "--heartbeat",
    str(HEARTBEAT),
    "--dead-after",
    str(DEAD_AFTER),
    "--lease",
    str(LEASE),
    "--lease-margin",
    str(LEASE_MARGIN),
)

# How long a node may take to start: a Python process importing Twisted on a
# busy two-core machine, several at once.
START_TIMEOUT = 20.0

_CHAT_LISTENING = re.compile(rb"Chat server listening on (\w+Address\(.*\))")
_JOINED = re.compile(rb"Node (\S+) is in the cluster")
_WELCOME = re.compile(r"\*\*\* Welcome to chatservice, (\S+)! ")


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def missing(testcase: SynchronousTestCase, what: str) -> None:
    """
    Skip C{testcase} for lack of C{what}, or fail it in CI, where every
    service a test needs must be there (as L{tests.support.services} does).
    """
    if in_ci():
        raise AssertionError(f"{testcase.id()}: {what}")
    raise unittest.SkipTest(what)


# Output of a process


class Output:
    """
    Everything a process writes to C{stream}, read by a thread as it comes,
    so that a process that logs a lot never blocks on a full pipe, and a
    test can wait (bounded) for a line of it.
    """

    def __init__(self, stream: object) -> None:
        self._fd = stream.fileno()  # type: ignore[attr-defined]
        self._data = b""
        self._ended = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                chunk = b""
            with self._changed:
                if not chunk:
                    self._ended = True
                    self._changed.notify_all()
                    return
                self._data += chunk
                self._changed.notify_all()

    @property
    def data(self) -> bytes:
        with self._changed:
            return self._data

    def join(self, timeout: float = TIMEOUT) -> None:
        self._thread.join(timeout)

    def wait(
        self, pattern: re.Pattern[bytes], count: int = 1, timeout: float = TIMEOUT
    ) -> list[re.Match[bytes]]:
        """
        The first C{count} lines matching C{pattern}, once there are so
        many; fails at the deadline, or if the output ends first.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in map(pattern.search, self._data.splitlines()) if m]
                if len(found) >= count:
                    return found[:count]
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    why = "the output ended" if self._ended else f"{timeout}s passed"
                    raise AssertionError(
                        f"{why} before {count} lines matching "
                        f"{pattern.pattern!r}:\n{self._data.decode(errors='replace')}"
                    )
                self._changed.wait(remaining)


def _end(process: subprocess.Popen[bytes], output: Output) -> None:
    """Stop C{process} (even a stopped one) and reap it; kill it if it stays."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        # A stopped process takes its SIGTERM when it runs again.
        process.send_signal(signal.SIGCONT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    output.join()
    if process.stdout is not None:
        process.stdout.close()


# Chat nodes


class Node:
    """
    One installed C{twistd -n chat} process, a node of a cluster, in a
    temporary directory; stopped in the test's cleanup. Start it, then wait
    for it with L{ready}: starting several first and waiting afterwards
    lets them start side by side.

    @ivar port: the line protocol's loopback port, once ready.
    @ivar irc_port: the IRC port, once ready, if it has one.
    """

    def __init__(
        self,
        testcase: SynchronousTestCase,
        name: str,
        redis: str,
        database: str,
        prefix: str,
        *,
        irc: bool = False,
        options: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.irc = irc
        self.directory = make_temp_dir(testcase)
        args = [
            str(TWISTD),
            "-n",
            "--pidfile=",
            "chat",
            "--node-id",
            name,
            "--redis",
            redis,
            "--redis-prefix",
            prefix,
            "--database",
            database,
            "--port",
            "tcp:0:interface=127.0.0.1",
            *TIMERS,
        ]
        if irc:
            args += ["--irc-port", "tcp:0:interface=127.0.0.1"]
        args += options
        self.process = subprocess.Popen(
            args,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        self.output = Output(self.process.stdout)
        testcase.addCleanup(_end, self.process, self.output)
        self.port = 0
        self.irc_port = 0

    def ready(self, timeout: float = START_TIMEOUT) -> Node:
        """Wait until the node listens and is in the cluster."""
        [chat] = self.output.wait(_CHAT_LISTENING, timeout=timeout)
        port = _TCP_PORT.search(chat.group(1))
        assert port is not None, chat.group(0)
        self.port = int(port.group(1))
        if self.irc:
            [irc] = self.output.wait(_IRC_LISTENING, timeout=timeout)
            self.irc_port = int(irc.group(1))
        self.output.wait(_JOINED, timeout=timeout)
        return self

    def logged(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """The first line of the node's log that matches C{pattern}."""
        [found] = self.output.wait(re.compile(pattern.encode()), timeout=timeout)
        return found.string.decode()

    def kill(self) -> None:
        """C{kill -9}: the node dies without a word to anyone."""
        self.process.kill()
        self.process.wait(timeout=TIMEOUT)

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM, and wait for the node to exit."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=15)


def fresh_prefix() -> str:
    """A Redis key prefix no other test uses."""
    return f"e2e:{uuid.uuid4().hex[:12]}:"


class Cluster:
    """
    C{count} nodes, C{n1}, C{n2}, ..., on one Redis and one database of
    their own, started side by side; C{irc} names the nodes (1-based) that
    have an IRC listener too.
    """

    def __init__(
        self,
        testcase: SynchronousTestCase,
        count: int = 3,
        *,
        redis: str | None = None,
        database: str | None = None,
        irc: Sequence[int] = (),
        options: Sequence[str] = (),
    ) -> None:
        self.testcase = testcase
        self.redis = redis or redis_endpoint(testcase)
        self.database = database or fresh_url(testcase)
        self.prefix = fresh_prefix()
        self.options = options
        self.nodes: list[Node] = []
        self.add(count, irc=irc)

    def add(self, count: int = 1, irc: Sequence[int] = ()) -> list[Node]:
        """Start C{count} more nodes, and wait until they are in."""
        first = len(self.nodes) + 1
        started = [
            Node(
                self.testcase,
                f"n{number}",
                self.redis,
                self.database,
                self.prefix,
                irc=number in irc,
                options=self.options,
            )
            for number in range(first, first + count)
        ]
        for node in started:
            node.ready()
        self.nodes += started
        return started

    def __getitem__(self, number: int) -> Node:
        """Node C{n<number>} (1-based)."""
        return self.nodes[number - 1]

    def user(self, number: int, nick: str | None = None) -> User:
        """A new line client of node C{number}, as C{nick}."""
        return User(self.testcase, self[number].port, nick)


# Line clients


class User:
    """
    A line-protocol client over a blocking socket. Every line read is kept
    in L{lines} (without its CRLF); L{expect} and L{collect} read on from
    where the last wait stopped, each bounded by a deadline.

    @ivar nick: the nickname it has, as far as its own waits saw.
    """

    def __init__(
        self, testcase: SynchronousTestCase, port: int, nick: str | None = None
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        testcase.addCleanup(self.sock.close)
        self.lines: list[str] = []
        self.cursor = 0
        self.ended = False
        self._buffer = b""
        welcome = self.expect(_WELCOME)
        match = _WELCOME.match(welcome)
        assert match is not None
        self.nick = match.group(1)
        if nick is not None:
            self.rename(nick)

    def __repr__(self) -> str:
        return f"<User {self.nick}>"

    def send(self, *lines: str) -> None:
        """Send each of C{lines}, CRLF-terminated, in one write."""
        self.sock.sendall(b"".join(line.encode() + b"\r\n" for line in lines))

    def _read(self, deadline: float) -> bool:
        """Read what comes before C{deadline}; False once the server closed."""
        if self.ended:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return True
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.ended = True
            return False
        *complete, self._buffer = (self._buffer + chunk).split(b"\r\n")
        self.lines += [line.decode("utf-8", "replace") for line in complete]
        return True

    def _found(self, match: Match, count: int, timeout: float) -> list[int]:
        predicate = _matcher(match)
        deadline = time.monotonic() + timeout
        found: list[int] = []
        index = self.cursor
        while True:
            while index < len(self.lines) and len(found) < count:
                if predicate(self.lines[index]):
                    found.append(index)
                index += 1
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline or not self._read(deadline):
                end = "the connection closed" if self.ended else f"{timeout}s passed"
                raise AssertionError(
                    f"{self.nick}: {end} with {len(found)} of {count} lines "
                    f"matching {match!r}; read after the last wait:\n"
                    + "\n".join(self.lines[self.cursor :])
                )

    def expect(self, match: Match, timeout: float = TIMEOUT) -> str:
        """
        The next line (after the last one waited for) matching C{match}: a
        whole line, a regular expression to search for, or a predicate.
        Lines passed over are not seen by later waits.
        """
        [index] = self._found(match, 1, timeout)
        self.cursor = index + 1
        return self.lines[index]

    def collect(self, match: Match, count: int, timeout: float = TIMEOUT) -> list[str]:
        """The next C{count} lines matching C{match}, in order."""
        found = self._found(match, count, timeout)
        self.cursor = found[-1] + 1
        return [self.lines[index] for index in found]

    def ask(self, command: str, match: Match, timeout: float = TIMEOUT) -> str:
        """Send C{command}; the next line matching C{match}."""
        self.send(command)
        return self.expect(match, timeout)

    def rename(self, nick: str, timeout: float = TIMEOUT) -> None:
        """Take C{nick}, and wait until the server says it is ours."""
        self.ask(f"/nick {nick}", f"*** You are now known as {nick}.", timeout)
        self.nick = nick

    def closed(self, timeout: float = TIMEOUT) -> list[str]:
        """Every line until the server closes the connection."""
        deadline = time.monotonic() + timeout
        while self._read(deadline):
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.nick}: still connected after {timeout}s; read:\n"
                    + "\n".join(self.lines[self.cursor :])
                )
        rest = self.lines[self.cursor :]
        self.cursor = len(self.lines)
        return rest

    def connected(self) -> bool:
        """Whether the server has kept the connection, as far as read."""
        self._read(time.monotonic())
        return not self.ended


def settle(users: Sequence[User], timeout: float = TIMEOUT) -> None:
    """
    Wait until every node of C{users} has applied what every other did so
    far: each sends every other a private message, and each waits for
    everyone else's. The log has one order, so a node that applied a
    user's message applied that user's every earlier change (its name, its
    joins) too. Private messages, so that no room's lines or history
    change; one refused because its node does not know the addressee yet
    is sent again.
    """
    token = uuid.uuid4().hex[:8]
    waiting: dict[User, set[str]] = {}
    for user in users:
        others = [o.nick for o in users if o is not user]
        user.send(*(f"/msg {nick} settle {token}" for nick in others))
        waiting[user] = {f"*{nick}* settle {token}" for nick in others}
    by_socket = {user.sock: user for user in users}
    deadline = time.monotonic() + timeout
    while any(waiting.values()):
        for user in users:
            for line in user.lines[user.cursor :]:
                waiting[user].discard(line)
                unknown = re.fullmatch(r"!!! No such nickname: (\S+)\.", line)
                if unknown:
                    user.send(f"/msg {unknown.group(1)} settle {token}")
            user.cursor = len(user.lines)
        if not any(waiting.values()):
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"not settled within {timeout}s: {waiting}")
        readable, _, _ = select.select(list(by_socket), [], [], remaining)
        for sock in readable:
            if not by_socket[sock]._read(time.monotonic() + TIMEOUT):
                raise AssertionError(f"{by_socket[sock]} was disconnected")


# Private services


def redis_socket(endpoint: str) -> str:
    """The UNIX socket path of a C{unix:path=...} endpoint string."""
    match = re.fullmatch(r"unix:path=([^:]+)(:.*)?", endpoint)
    assert match is not None, f"not a UNIX socket endpoint: {endpoint!r}"
    return match.group(1)


RESP = int | bytes | str | None | list["RESP"]


def _reply(read: Callable[[], bytes]) -> RESP:
    """One RESP reply, read line by line with C{read} (integers, simple and
    bulk strings, arrays; an error raises)."""
    line = read()
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise AssertionError(f"Redis said: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if int(rest) < 0 else read()
    if kind == b"*":
        return None if int(rest) < 0 else [_reply(read) for _ in range(int(rest))]
    raise AssertionError(f"Not a RESP reply: {line!r}")


def redis_command(endpoint: str, *words: str, timeout: float = TIMEOUT) -> RESP:
    """
    Send one command to the Redis at C{endpoint} (C{unix:path=...}), and
    return its reply.
    """
    request = f"*{len(words)}\r\n".encode() + b"".join(
        f"${len(word.encode())}\r\n".encode() + word.encode() + b"\r\n"
        for word in words
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(redis_socket(endpoint))
        sock.sendall(request)
        stream = sock.makefile("rb")

        def read() -> bytes:
            line = stream.readline()
            if not line.endswith(b"\r\n"):
                raise AssertionError(f"Redis closed the connection: {line!r}")
            return line[:-2]

        return _reply(read)


def subscribers(endpoint: str, channel: str) -> int:
    """How many connections are subscribed to C{channel}."""
    reply = redis_command(endpoint, "PUBSUB", "NUMSUB", channel)
    assert isinstance(reply, list) and isinstance(reply[1], int), reply
    return reply[1]


def wait_for(predicate: Callable[[], bool], what: str, timeout: float) -> None:
    """
    Poll C{predicate} until it holds, for a state that nothing announces
    (a Redis subscription made again); fails at the deadline.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not {what} within {timeout}s")
        time.sleep(0.02)


class PrivateRedis:
    """
    A C{redis-server} of the test's own on a UNIX socket in a temporary
    directory, without persistence, stopped (by PID) in the test's cleanup.
    """

    def __init__(self, testcase: SynchronousTestCase) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing(testcase, "redis-server is not on PATH")
        assert binary is not None
        self.binary = binary
        self.testcase = testcase
        self.directory = make_temp_dir(testcase)
        self.path = str(self.directory / "redis.sock")
        self.endpoint = f"unix:path={self.path}"
        self.process: subprocess.Popen[bytes] | None = None
        self.output: Output | None = None
        # Stopped after the nodes, which were started after it: a node
        # stopping with its Redis gone would wait for it.
        testcase.addCleanup(self.stop)
        self.start()

    def start(self) -> None:
        process = subprocess.Popen(
            redis_server_argv(self.binary, Path(self.path), self.directory),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert process.stdout is not None
        self.process, self.output = process, Output(process.stdout)
        self.output.wait(
            re.compile(rb"(?i)ready to accept connections"), timeout=TIMEOUT
        )

    def stop(self) -> None:
        if self.process is not None and self.output is not None:
            _end(self.process, self.output)

    def kill(self) -> None:
        """C{kill -9}: Redis is gone, and what it held with it."""
        assert self.process is not None and self.output is not None
        self.process.kill()
        _end(self.process, self.output)


class PrivatePostgres:
    """
    A PostgreSQL cluster of the test's own (C{initdb} in a temporary
    directory; as root, run as the C{postgres} user, which refuses nothing
    else), on a UNIX socket only, with a database C{chat}; stopped in the
    test's cleanup.

    @ivar url: the libpq URL of its C{chat} database.
    """

    def __init__(self, testcase: SynchronousTestCase) -> None:
        bindir = find_postgres_bindir()
        if bindir is None:
            missing(testcase, "PostgreSQL's initdb is not installed")
        assert bindir is not None
        self.bin = bindir
        self.as_postgres: list[str] = []
        directory = make_temp_dir(testcase)
        # The postgres user must reach the socket and data inside.
        directory.chmod(0o755)
        if os.getuid() == 0:
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
            shutil.chown(directory, "postgres", "postgres")
        self.data = directory / "data"
        self.socket_dir = directory
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "chat",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            timeout=60,
        )
        testcase.addCleanup(self.stop)
        self.start()
        self._run("createdb", "-h", str(directory), "-p", "5432", "-U", "chat", "chat")
        self.url = f"postgresql://chat@/chat?host={directory}&port=5432"

    def _run(self, program: str, *args: str, timeout: float = 30) -> None:
        result = subprocess.run(
            [*self.as_postgres, str(self.bin / program), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"{program} failed: {result.stdout.decode()} {result.stderr.decode()}"
            )

    def start(self) -> None:
        options = (
            f"-k {self.socket_dir} -p 5432 -c listen_addresses='' -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.socket_dir / "log"),
            "-w", "-t", "30", "-s", "-o", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop it (fast: connections are cut), if it runs."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30",
                      "-s", "stop")  # fmt: skip
