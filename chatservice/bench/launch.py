"""
Starting the servers to measure, finding their port, and stopping them with
everything they started.

Ours is the C{twistd} installed next to this interpreter, with the limits
that would get in a benchmark's way lifted; the minimal peer that
C{--compare} measures it against ships in C{peers/}, beside this module, so
that an installed C{chat-bench} finds it from any directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chatservice.bench.errors import BenchError
from chatservice.bench.proc import measured_pid

HOST = "127.0.0.1"

# The server we measure, as the brief for this benchmark fixes it: no flood
# control, no per-address cap, a SendQ large enough for any window.
OURS_ARGS = [
    "--pidfile=",
    "-n",
    "chat",
    "--port",
    "tcp:0:interface=127.0.0.1",
    "--flood-rate",
    "0",
    "--max-per-ip",
    "0",
    "--sendq",
    # Room for --slow readers to be held, not dropped, for a whole run.
    "1073741824",
    # History on, as by default, in a file of the run's own.
    "--database",
    "{workdir}/chat.sqlite3",
]
# What --history compares ours with.
NO_HISTORY = "--no-history"
# What --compare compares ours with, unless --peer names another.
MINIMAL_PEER = Path(__file__).parent / "peers" / "minimal.py"

# "port=NNNN", "port NNNN" or "listening on NNNN" in what a server prints.
PORT_PATTERN = re.compile(rb"(?:\bport[= ]|listening on )(\d{1,5})\b", re.IGNORECASE)

# Ours logs its chat port as "Chat server listening on IPv4Address(...,
# port=N)"; other lines before it may hold a "port=" (a postgresql:// URL's).
CHAT_PORT_PATTERN = re.compile(rb"Chat server listening on [^\n]*?\bport=(\d{1,5})\b")

# With --protocol irc, ours also listens for IRC, and logs that port after
# the chat port: "IRC server listening on IPv4Address(..., port=N)".
IRC_ARGS = ["--irc-port", "tcp:0:interface=127.0.0.1"]
IRC_PORT_PATTERN = re.compile(rb"IRC server listening on [^\n]*?\bport=(\d{1,5})\b")


# With --protocol ws, ours also serves the web front end, and logs that
# port: "Web server listening on IPv4Address(..., port=N)".
WEB_ARGS = ["--web", "tcp:0:interface=127.0.0.1"]
WEB_PORT_PATTERN = re.compile(rb"Web server listening on [^\n]*?\bport=(\d{1,5})\b")


def port_pattern(protocol: str) -> re.Pattern[bytes]:
    """How to find the port to measure in what a server of ours prints."""
    if protocol == "irc":
        return IRC_PORT_PATTERN
    if protocol == "ws":
        return WEB_PORT_PATTERN
    return CHAT_PORT_PATTERN


@dataclass
class Server:
    """A server to measure: where it listens and, if known, its process."""

    label: str
    host: str
    port: int
    pid: int | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    command: list[str] = field(default_factory=list)
    # Keep the log when the server stops, tracebacks or not: a run against
    # it lost lines or connections, and the log may say why.
    keep_log: bool = False

    def log_text(self) -> str:
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def tracebacks(self) -> int:
        return self.log_text().count("Traceback (most recent call last)")

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = "\n".join(self.log_text().splitlines()[-20:])
            raise BenchError(
                f"the server ({self.label}) exited with status "
                f"{self.process.returncode}:\n{tail}"
            )


def twistd_path() -> Path:
    """The C{twistd} installed with this interpreter."""
    return Path(sys.executable).with_name("twistd")


def protocol_args(protocol: str) -> list[str]:
    """
    What ours needs besides the chat port to be measured over C{protocol}:
    for C{"irc"} an IRC listener (whose port L{IRC_PORT_PATTERN} finds),
    for C{"ws"} a web listener (L{WEB_PORT_PATTERN}).
    """
    return list({"irc": IRC_ARGS, "ws": WEB_ARGS}.get(protocol, []))


def ours_command(protocol: str = "line") -> list[str]:
    """Ours, as measured, over C{protocol} (see L{protocol_args})."""
    return [str(twistd_path()), *OURS_ARGS, *protocol_args(protocol)]


def peer_command(peer: Path) -> list[str]:
    return [sys.executable, str(peer), "{port}"]


def label_for(command: Sequence[str]) -> str:
    """
    A short name for a server command: its script's, its module's (after
    C{-m}), or its program's.
    """
    for before, arg in zip(["", *command], command, strict=False):
        if arg.endswith(".py"):
            return Path(arg).stem
        if before == "-m":
            return arg.rpartition(".")[2]
    return Path(command[0]).name if command else "server"


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def launched(
    command: Sequence[str],
    label: str,
    timeout: float = 30.0,
    pattern: re.Pattern[bytes] = PORT_PATTERN,
) -> Iterator[Server]:
    """
    Start C{command} (C{{port}} in it replaced by a free port, C{{workdir}}
    by a temporary directory of its own; C{python} as its program meaning
    this interpreter), wait until it says which port it
    listens on (the first group of C{pattern}, or, with C{{port}}, accepts
    a connection there), and kill it afterwards: SIGTERM to its process
    group, then SIGKILL.
    """
    argv = list(command)
    port: int | None = None
    if any("{port}" in a for a in argv):
        port = free_port()
        argv = [a.replace("{port}", str(port)) for a in argv]
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    workdir = tempfile.mkdtemp(prefix="chat-bench-")
    argv = [a.replace("{workdir}", workdir) for a in argv]
    log_path = Path(workdir) / "server.log"
    try:
        process = spawn_logged(argv, log_path)
    except OSError as e:
        raise BenchError(f"cannot start the server {argv[0]}: {e}") from None
    server = Server(label, HOST, 0, None, process, log_path, argv)
    try:
        found = wait_for_port(process, log_path, timeout, pattern, port)
        if found is None:
            server.check_alive()
            raise BenchError(
                f"the server ({label}) did not say which port it listens "
                f"on within {timeout:g} s: {shlex.join(argv)}"
            )
        server.port = found
        server.pid = measured_pid(process.pid)
        yield server
    except Exception:
        # A run that failed against it: its log may say why.
        server.keep_log = True
        raise
    finally:
        stop_process_group(process)
        tracebacks = server.tracebacks()
        if tracebacks or server.keep_log:
            why = (
                f"has {tracebacks} tracebacks"
                if tracebacks
                else "may say why a run against it went wrong"
            )
            print(
                f"chat-bench: the log of the server ({label}) {why}; "
                f"it is kept at {log_path}",
                file=sys.stderr,
            )
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def spawn_logged(
    argv: Sequence[str],
    log_path: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """
    Start C{argv} in a session of its own (see L{stop_process_group}), its
    input closed and its output and errors written to C{log_path}.
    """
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_port(
    process: subprocess.Popen[bytes],
    log_path: Path,
    timeout: float,
    pattern: re.Pattern[bytes] = PORT_PATTERN,
    port: int | None = None,
    interval: float = 0.02,
) -> int | None:
    """
    Wait until C{process} writes to C{log_path} which port it listens on
    (the first group of C{pattern}) or, if C{port} is given, until that port
    accepts a connection; return the port (C{port} if given). None if the
    process exits first or C{timeout} seconds pass.
    """
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        match = pattern.search(log_path.read_bytes())
        if match:
            return port or int(match.group(1))
        if port is not None and _can_connect(HOST, port):
            return port
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)
    return None


def stop_process_group(process: subprocess.Popen[bytes], grace: float = 5.0) -> bool:
    """
    End a server started by L{spawn_logged} (as L{launched} does) and
    everything it started: SIGTERM to its process group, then, after
    C{grace} seconds, SIGKILL. Return whether SIGKILL was needed.
    """

    def group_alive() -> bool:
        process.poll()  # reap the leader, so that it does not count
        try:
            os.killpg(process.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    killed = False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not group_alive():
            break
        killed = sig == signal.SIGKILL
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        ends = time.monotonic() + grace
        while group_alive() and time.monotonic() < ends:
            time.sleep(0.02)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace)
    return killed
