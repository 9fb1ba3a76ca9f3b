"""
C{chat-bench}: the fan-out benchmark.

It starts a chat server (ours, C{twistd -n chat} with its limits lifted, by
default; any command with C{--server-command}; or a running one with
C{--target}), connects R receivers and S senders to the one room, and has
the senders say fixed-size lines as fast as a window of undelivered lines
allows (or at a paced total rate) for a measured window. Every connection
counts every line it gets; only one line per read is parsed.

How a run goes:

  1. I{Connect}: C{--processes} worker processes open the connections,
     paced so that the server's accept queue never overflows (the server's
     open descriptors in C{/proc} say how many it has accepted).
  2. I{Calibrate}: every sender says a calibration line, round after round
     until every connection has seen the latest round from every sender.
     From it each connection learns how the server frames each sender's
     lines (for ours C{[lobby] <guestN> } before and C{\\r\\n} after the
     payload; for the minimal peer nothing before and C{\\n} after), and
     everything before it (welcome and join lines) is skipped: the server
     produced every join before the calibration lines that follow it.
  3. I{Measure}: every connection switches to counting at a barrier; the
     senders start together at a time given to every worker and stop after
     C{--seconds}.
  4. I{Drain}: the workers are told how many lines each sender sent and
     read until every connection has all it should (or C{--drain} seconds
     pass).

Every payload is C{SSSS QQQQQQQQ TTTTTTTTTTTT CCCC} in hex (sender,
sequence number, send time in microseconds of the wall clock, which every
process on the machine shares and the kernel's receive timestamps use, and
a CRC of those), filler depending
on the sequence number, and C{|} (a byte found nowhere else in a line)
before the newline. The receive path is C{recv_into} one shared buffer and,
per read, C{count(b"\\n")} and the parse of the last complete line (its
latency, its order among that sender's lines, and whether it is exactly the
bytes that sender sent, framed as calibrated). With C{--checksum}, also
C{count(b"|")} and C{zlib.adler32} (whose low half is the byte sum, which
any interleaving of whole lines leaves unchanged) over every byte. Per
connection at the end:

  - lost = expected lines - lines received (if positive), duplicates the
    opposite;
  - corrupt (at least) = sampled lines that are not exactly what that sender
    sent, plus one if the byte count does not fit the lines received, plus
    (with C{--checksum}) lines without exactly one C{|} and one if the byte
    sum differs from what the lines sent add up to.

From Python: L{launched} starts a server, L{run_point} and L{run_idle} run
one measurement against it and return a L{PointResult} or L{IdleResult}.
The workers are C{spawn}ed processes, so a script that calls these needs
the usual C{if __name__ == "__main__":} guard.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

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
DEFAULT_PEER = "bench/peers/minimal.py"

# "port=NNNN", "port NNNN" or "listening on NNNN" in what a server prints.
PORT_PATTERN = re.compile(rb"(?:\bport[= ]|listening on )(\d{1,5})\b", re.IGNORECASE)

# Payload layout (see the module docstring).
HEAD = 24
CHECK = 4
FILL = b"ghijklmnopqrstuv"
MARK = b"|"
MIN_SIZE = HEAD + CHECK + 2
TS_MASK = (1 << 48) - 1
ANCILLARY_SIZE = 64
ADLER_MOD = 65521

# Latency histogram: bucket i holds latencies of about exp(i / 50)
# microseconds (2% wide), up to about an hour.
BUCKETS_PER_E = 50
BUCKETS = 1100

# Connections opened but not yet accepted by the server, at most (the
# listen backlog of a Twisted port is 50; a full accept queue drops SYNs
# and costs a second per dropped connect).
PACE = 32

RECV_BUFFER = 1 << 20
MAX_BATCH = 512
CAL_ROUND_SECONDS = 1.0


class BenchError(Exception):
    """A run that could not be carried out (as opposed to bad results)."""


# Linux's SO_TIMESTAMPNS (and SCM_TIMESTAMPNS), which the socket module
# does not name: the kernel stamps each received segment with the time it
# reached the socket.
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("@qq")


def now_us() -> int:
    """
    Microseconds on the wall clock: the clock the kernel's receive
    timestamps use, and the same in every process.
    """
    return (time.time_ns() // 1000) & TS_MASK


def kernel_rx_us(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """
    The kernel's receive time, in microseconds, from C{recvmsg} ancillary
    data; None if there is none.
    """
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds: int
            nanoseconds: int
            seconds, nanoseconds = TIMESPEC.unpack_from(data)
            return (seconds * 1_000_000 + nanoseconds // 1000) & TS_MASK
    return None


def fills_for(size: int) -> list[bytes]:
    """What ends the payload of a line of C{size} bytes, by seq % 16."""
    return [bytes([c]) * (size - MIN_SIZE) + MARK for c in FILL]


def payload(sid: int, seq: int, ts: int, fills: list[bytes]) -> bytes:
    """
    The bytes a sender says, without the newline: C{size - 1} of them.
    """
    head = b"%04x%08x%012x" % (sid, seq, ts)
    return head + b"%04x" % (zlib.crc32(head) & 0xFFFF) + fills[seq & 15]


def byte_sum(data: bytes | memoryview | bytearray) -> int:
    """Sum of C{data}'s bytes modulo 65521, in C."""
    return (zlib.adler32(data) & 0xFFFF) - 1


def bucket(us: int) -> int:
    if us <= 1:
        return 0
    return min(int(math.log(us) * BUCKETS_PER_E), BUCKETS - 1)


def percentile_ms(histogram: Sequence[int], fraction: float) -> float | None:
    total = sum(histogram)
    if not total:
        return None
    rank = max(1, math.ceil(total * fraction))
    seen = 0
    for i, n in enumerate(histogram):
        seen += n
        if seen >= rank:
            return math.exp((i + 0.5) / BUCKETS_PER_E) / 1000.0
    return None


def raise_nofile() -> int:
    """Raise the soft limit on open files to the hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# The server's process, seen through /proc


def proc_status(pid: int, *keys: str) -> dict[str, int] | None:
    """
    The figures C{keys} (such as C{VmRSS} and C{VmHWM}, in KiB) of C{pid},
    from one read of C{/proc/PID/status}; those it does not show are left
    out. None if there is no such process.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    figures: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in keys:
            figures[key] = int(rest.split()[0])
    return figures


def proc_status_kib(pid: int, key: str) -> int | None:
    """One figure of L{proc_status}; None if it is not known."""
    return (proc_status(pid, key) or {}).get(key)


def proc_cpu_times(pid: int) -> tuple[float, float] | None:
    """User and system CPU seconds of C{pid}."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def proc_fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def _is_python(pid: int) -> bool:
    try:
        return "python" in Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


def measured_pid(pid: int) -> int:
    """
    The process to measure for a command started as C{pid}: itself if it is
    Python; if it is a wrapper (a shell, C{env}, ...), its one Python child
    if it has exactly one.
    """
    if _is_python(pid):
        return pid
    pythons = [c for c in _children(pid) if _is_python(c)]
    return pythons[0] if len(pythons) == 1 else pid


# Servers


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


def ours_command() -> list[str]:
    return [str(twistd_path()), *OURS_ARGS]


def peer_command(peer: Path) -> list[str]:
    return [sys.executable, str(peer), "{port}"]


def label_for(command: Sequence[str]) -> str:
    """A short name for a server command: its script's, or its program's."""
    for arg in command:
        if arg.endswith(".py"):
            return Path(arg).stem
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
    command: Sequence[str], label: str, timeout: float = 30.0
) -> Iterator[Server]:
    """
    Start C{command} (C{{port}} in it replaced by a free port, C{{workdir}}
    by a temporary directory of its own; C{python} as its program meaning
    this interpreter), wait until it says which port it
    listens on (or, with C{{port}}, accepts a connection there), and kill it
    afterwards: SIGTERM to its process group, then SIGKILL.
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
        found = wait_for_port(process, log_path, timeout, port=port)
        if found is None:
            server.check_alive()
            raise BenchError(
                f"the server ({label}) did not say which port it listens "
                f"on within {timeout:g} s: {shlex.join(argv)}"
            )
        server.port = found
        server.pid = measured_pid(process.pid)
        yield server
    finally:
        stop_process_group(process)
        tracebacks = server.tracebacks()
        if tracebacks:
            print(
                f"chat-bench: the log of the server ({label}) has {tracebacks} "
                f"tracebacks; it is kept at {log_path}",
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


# What the workers are told and what they report


@dataclass(frozen=True)
class WorkerSpec:
    host: str
    port: int
    receivers: int
    sender_ids: tuple[int, ...]
    senders: int
    workers: int
    size: int
    window: int
    rate_per_sender: float | None
    server_pid: int | None
    server_fds: int | None
    deadline_ns: int
    checksum: bool = False
    idle: bool = False
    kernel_time: bool = True
    slow: int = 0


@dataclass
class WorkerResult:
    clients: int = 0
    window_lines: int = 0
    window_receiver_lines: int = 0
    lines: int = 0
    expected: int = 0
    lost: int = 0
    duplicates: int = 0
    corrupt: int = 0
    reordered: int = 0
    disconnected: int = 0
    incomplete: int = 0
    noise: int = 0
    delivered_form: str = ""
    max_latency_us: int = 0
    histogram: list[int] = field(default_factory=list)
    cpu_window: float = 0.0
    cpu_window_system: float = 0.0
    window_reads: int = 0


# Indices into the array the processes share: per sender, lines sent; per
# worker, the fewest lines any of its receivers has counted, the lines all
# its connections have counted, the connections it has opened, and whether
# a sender of its waits for the window to open.
def _layout(senders: int, workers: int) -> tuple[int, int, int, int, int]:
    minimum = senders
    total = minimum + workers
    started = total + workers
    blocked = started + workers
    return minimum, total, started, blocked, blocked + workers


NOBODY = 1 << 62

# Client modes
CONNECTING, CALIBRATING, COUNTING, DISCARDING = range(4)


class Client:
    """One connection of a worker: a receiver, or a sender (which receives
    the other senders' lines too)."""

    __slots__ = (
        "bad_samples",
        "bytes",
        "cal_round",
        "cal_rounds",
        "closed",
        "eol",
        "expected",
        "expected_bytes",
        "expected_sum",
        "fd",
        "last_seq",
        "lines",
        "marks",
        "max_len",
        "min_len",
        "mode",
        "pending",
        "prefix",
        "reordered",
        "sent",
        "sent_sum",
        "sid",
        "sock",
        "sum",
        "tail",
    )

    def __init__(self, sock: socket.socket, sid: int, senders: int) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.sid = sid
        self.mode = CONNECTING
        self.tail = b""
        self.closed = False
        self.lines = 0
        self.bytes = 0
        self.marks = 0
        self.sum = 0
        self.bad_samples = 0
        self.reordered = 0
        self.last_seq = [0] * senders
        self.prefix: list[bytes | None] = [None] * senders
        self.eol: list[bytes | None] = [None] * senders
        # Highest calibration round seen from each sender (-1: none; a
        # sender does not hear itself).
        self.cal_rounds = [-1] * senders
        if sid >= 0:
            self.cal_rounds[sid] = NOBODY
        self.cal_round = -1 if senders > (sid >= 0) else NOBODY
        self.expected = 0
        self.expected_bytes = 0
        self.expected_sum = 0
        self.min_len = 0
        self.max_len = 0
        # Sender side
        self.pending = b""
        self.sent = 0
        self.sent_sum = 0


class Worker:
    """One generator process: many non-blocking sockets on one epoll."""

    def __init__(
        self,
        index: int,
        spec: WorkerSpec,
        control: Connection,
        shared: Any,
        wake: Connection,
        wakers: list[Connection],
    ) -> None:
        self.index = index
        self.spec = spec
        self.control = control
        self.shared = shared
        (self.i_min, self.i_total, self.i_started, self.i_blocked, _) = _layout(
            spec.senders, spec.workers
        )
        self.wake = wake
        self.wakers = wakers
        # The fewest lines any receiver of this worker has counted, and how
        # many receivers have exactly that many: the minimum is recomputed
        # only when the last of those moves on.
        self.low = 0
        self.at_low = 0
        self.fills = fills_for(spec.size)
        self.checksum = spec.checksum
        # The kernel's receive time of the last read, when it gives one.
        self.rx_us: int | None = None
        self.slow: list[socket.socket] = []
        self.plen = spec.size - 1
        self.buf = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buf)
        self.epoll = select.epoll()
        self.clients: list[Client] = []
        self.receivers: list[Client] = []
        self.senders: list[Client] = []
        self.by_fd: dict[int, Client] = {}
        self.result = WorkerResult()
        self.histogram = [0] * BUCKETS
        self.cal_reported = (-2, 0)
        self.t0 = 0
        self.t_end = 0
        self.sending = False
        self.stopped = False
        self.stop_reported = False
        self.counting = False
        self.finals: dict[int, tuple[int, int]] | None = None
        self.drain_deadline = 0
        self.complete_at = 0
        self.next_min = 0
        self.fewest = 0
        self.window_blocked = False
        self.reads = 0
        self.reads0 = 0
        self.cpu0 = (0.0, 0.0)
        self.done = False
        self.last_rx = 0
        self.rx_bytes = 0
        self.heard = 0

    # Set-up

    def run(self) -> None:
        raise_nofile()
        self.epoll.register(self.control.fileno(), select.EPOLLIN)
        self.epoll.register(self.wake.fileno(), select.EPOLLIN)
        self.connect_all()
        self.control.send(("connected", len(self.clients)))
        while not self.done:
            now = time.monotonic_ns()
            if now > self.spec.deadline_ns:
                raise BenchError("worker deadline passed")
            self.tick(now)
            if self.done:
                break
            self.poll(self.timeout(now))

    def connect_all(self) -> None:
        spec = self.spec
        self.connect_slow()
        total = spec.receivers + len(spec.sender_ids)
        roles = [-1] * spec.receivers + list(spec.sender_ids)
        # Senders last: their calibration and lines come after everyone.
        accepted = 0
        stalled_since = time.monotonic()
        for n, sid in enumerate(roles):
            if spec.server_pid is not None and spec.server_fds is not None:
                while True:
                    started = sum(
                        self.shared[self.i_started + w] for w in range(spec.workers)
                    )
                    if started - accepted < PACE:
                        break
                    fds = proc_fd_count(spec.server_pid)
                    if fds is None:
                        break
                    if fds - spec.server_fds > accepted:
                        accepted = fds - spec.server_fds
                        stalled_since = time.monotonic()
                        continue
                    if time.monotonic() - stalled_since > 2.0:
                        # Cannot see it accept (a wrapper?); go on anyway.
                        stalled_since = time.monotonic()
                        break
                    self.poll(0.002)
            if time.monotonic_ns() > spec.deadline_ns:
                raise BenchError(f"deadline passed after {n} of {total} connections")
            try:
                sock = socket.create_connection((spec.host, spec.port), timeout=10)
            except OSError as e:
                raise BenchError(
                    f"connection {n + 1} of {total} to {spec.host}:{spec.port} "
                    f"failed: {e}"
                ) from None
            sock.setblocking(False)
            client = Client(sock, sid, spec.senders)
            client.mode = DISCARDING if spec.idle else CALIBRATING
            if sid >= 0:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.senders.append(client)
            else:
                self.receivers.append(client)
            if spec.kernel_time:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.clients.append(client)
            self.by_fd[client.fd] = client
            self.epoll.register(client.fd, select.EPOLLIN)
            self.shared[self.i_started + self.index] += 1
            self.poll(0)
        self.result.clients = len(self.clients)

    def connect_slow(self) -> None:
        """
        Connect the C{--slow} readers: in the room like any receiver, with a
        small receive buffer, and never read. They are not counted; they
        are there so that the others are measured with them present.
        """
        spec = self.spec
        for n in range(spec.slow):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(10)
            try:
                sock.connect((spec.host, spec.port))
            except OSError as e:
                sock.close()
                raise BenchError(
                    f"slow reader {n + 1} failed to connect: {e}"
                ) from None
            self.slow.append(sock)

    # The loop

    def timeout(self, now: int) -> float:
        if self.sending:
            if self.spec.rate_per_sender is not None:
                return 0.001
            if self.window_blocked and self.fewest_now() != self.fewest:
                # The receivers moved since the senders last looked.
                return 0.0
            # Woken by the receivers' progress.
            return 0.05
        if self.t0 and not self.stopped:
            return max(0.0, (self.t0 - now) / 1e9)
        if self.finals is not None:
            return 0.01
        return 0.05

    def poll(self, timeout: float) -> None:
        for fd, events in self.epoll.poll(timeout):
            client = self.by_fd.get(fd)
            if client is None:
                if fd == self.wake.fileno():
                    while self.wake.poll():
                        self.wake.recv_bytes()
                else:
                    self.on_control()
                continue
            if events & select.EPOLLOUT:
                self.flush(client)
            if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                self.on_read(client)

    def on_control(self) -> None:
        while self.control.poll():
            try:
                message = self.control.recv()
            except EOFError:
                self.done = True
                return
            kind = message[0]
            if kind == "cal":
                for client in self.senders:
                    line = payload(client.sid, 0, message[1], self.fills) + b"\n"
                    self.queue(client, line)
            elif kind == "start":
                self.start(message[1], message[2])
            elif kind == "finals":
                self.finals = message[1]
                self.drain_deadline = message[2]
                self.expect(message[1])
            elif kind == "status":
                self.control.send(
                    (
                        "status",
                        sum(not c.closed for c in self.clients),
                        self.heard,
                        self.rx_bytes,
                        self.last_rx,
                    )
                )
            elif kind == "exit":
                self.done = True

    def start(self, t0: int, t_end: int) -> None:
        for client in self.clients:
            if client.tail:
                self.result.noise += 1
            client.mode = COUNTING
        self.low = 0
        self.at_low = len(self.receivers)
        if self.receivers:
            self.shared[self.i_min + self.index] = 0
        self.counting = True
        self.t0 = t0
        self.t_end = t_end

    def tick(self, now: int) -> None:
        if self.clients and not self.spec.idle and not self.counting:
            lowest = min(c.cal_round for c in self.clients)
            closed = sum(c.closed for c in self.clients)
            if (lowest, closed) != self.cal_reported:
                self.cal_reported = (lowest, closed)
                self.control.send(("calibrated", lowest, closed))
            return
        if not self.counting:
            return
        if now >= self.next_min:
            self.next_min = now + 100_000_000
            self.shared[self.i_total + self.index] = sum(c.lines for c in self.clients)
        if not self.sending and not self.stopped and now >= self.t0:
            self.sending = True
            self.cpu0 = cpu_times()
            self.reads0 = self.reads
        if self.sending:
            if now >= self.t_end:
                self.sending = False
                self.stopped = True
                user, system = cpu_times()
                self.result.cpu_window = user + system - sum(self.cpu0)
                self.result.cpu_window_system = system - self.cpu0[1]
                self.result.window_reads = self.reads - self.reads0
                self.result.window_lines = sum(c.lines for c in self.clients)
                self.result.window_receiver_lines = sum(c.lines for c in self.receivers)
                self.shared[self.i_total + self.index] = self.result.window_lines
            else:
                self.send_lines(now)
        if self.stopped and not self.stop_reported:
            if all(not c.pending or c.closed for c in self.senders):
                self.stop_reported = True
                self.control.send(
                    (
                        "stopped",
                        {c.sid: (c.sent, c.sent_sum) for c in self.senders},
                    )
                )
        if self.finals is not None:
            if all(c.lines >= c.expected or c.closed for c in self.clients):
                if not self.complete_at:
                    # Stay a little to catch lines beyond the expected.
                    self.complete_at = now + 100_000_000
                elif now >= self.complete_at:
                    self.report()
            elif now >= self.drain_deadline:
                self.report()

    def new_low(self) -> None:
        """
        Every receiver of this worker has moved past the old minimum: say
        so, and wake the workers whose senders wait for it.
        """
        lines = [c.lines for c in self.receivers if not c.closed]
        self.low = low = min(lines, default=NOBODY)
        self.at_low = lines.count(low)
        shared = self.shared
        shared[self.i_min + self.index] = low
        for w, waker in enumerate(self.wakers):
            if shared[self.i_blocked + w]:
                shared[self.i_blocked + w] = 0
                if w != self.index:
                    with contextlib.suppress(OSError):
                        waker.send_bytes(b"")

    # Sending

    def send_lines(self, now: int) -> None:
        spec = self.spec
        shared = self.shared
        self.fewest = fewest = self.fewest_now()
        self.window_blocked = False
        share = fewest // spec.senders + spec.window
        for client in self.senders:
            if client.pending or client.closed:
                continue
            allowed = share - client.sent
            if spec.rate_per_sender is not None:
                due = int(spec.rate_per_sender * (now - self.t0) / 1e9) - client.sent
                allowed = min(allowed, due)
            if allowed <= 0:
                if share <= client.sent:
                    # Waiting for the receivers: be woken when they move.
                    shared[self.i_blocked + self.index] = 1
                    self.window_blocked = True
                continue
            first = client.sent + 1
            last = first + min(allowed, MAX_BATCH)
            ts = now_us()
            # payload() + b"\n", unrolled: this is the senders' hot loop.
            fills = self.fills
            crc32 = zlib.crc32
            who = b"%04x" % client.sid
            when = b"%012x" % ts
            parts: list[bytes] = []
            add = parts.append
            for seq in range(first, last):
                head = b"%s%08x%s" % (who, seq, when)
                add(b"%s%04x%s\n" % (head, crc32(head) & 0xFFFF, fills[seq & 15]))
            data = b"".join(parts)
            client.sent = last - 1
            client.sent_sum += byte_sum(data)
            shared[client.sid] = client.sent
            self.queue(client, data)

    def fewest_now(self) -> int:
        """The fewest lines any receiver has counted, in any worker."""
        shared = self.shared
        i = self.i_min
        fewest: int = min(shared[i + w] for w in range(self.spec.workers))
        return fewest

    def queue(self, client: Client, data: bytes) -> None:
        if client.pending:
            client.pending += data
            return
        client.pending = data
        self.flush(client)

    def flush(self, client: Client) -> None:
        data = client.pending
        if not data or client.closed:
            client.pending = b""
            return
        try:
            n = client.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.close(client)
            return
        client.pending = data[n:]
        events = select.EPOLLIN | (select.EPOLLOUT if client.pending else 0)
        self.epoll.modify(client.fd, events)

    # Receiving

    def close(self, client: Client) -> None:
        if client.closed:
            return
        client.closed = True
        client.pending = b""
        if self.counting and client.sid < 0 and client.lines == self.low:
            self.at_low -= 1
            if not self.at_low:
                self.new_low()
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.epoll.unregister(client.fd)
        del self.by_fd[client.fd]
        client.sock.close()

    def on_read(self, client: Client) -> None:
        buf = self.buf
        tail = client.tail
        t = len(tail)
        if t:
            buf[:t] = tail
        try:
            if self.spec.kernel_time:
                n, ancillary, _, _ = client.sock.recvmsg_into(
                    [self.view[t:]], ANCILLARY_SIZE
                )
                self.rx_us = kernel_rx_us(ancillary)
            else:
                n = client.sock.recv_into(self.view[t:])
        except BlockingIOError:
            return
        except OSError:
            n = 0
        if n == 0:
            self.close(client)
            return
        end = t + n
        mode = client.mode
        if mode == COUNTING:
            self.reads += 1
            client.bytes += n
            before = client.lines
            client.lines = before + buf.count(b"\n", t, end)
            if before == self.low and client.sid < 0 and client.lines > before:
                self.at_low -= 1
                if not self.at_low:
                    self.new_low()
            if self.checksum:
                client.marks += buf.count(b"|", t, end)
                client.sum += byte_sum(self.view[t:end])
            p = buf.rfind(b"\n", 0, end)
            if p < 0:
                client.tail = bytes(buf[:end])
                return
            q = buf.rfind(b"\n", 0, p)
            self.sample(client, bytes(buf[q + 1 : p + 1]))
            client.tail = bytes(buf[p + 1 : end])
        elif mode == DISCARDING:
            if not client.bytes:
                self.heard += 1
            client.bytes += n
            self.rx_bytes += n
            self.last_rx = time.monotonic_ns()
        else:
            p = buf.rfind(b"\n", 0, end)
            if p < 0:
                client.tail = bytes(buf[:end])
                return
            if buf.find(b"|", 0, p) >= 0:
                for line in bytes(buf[:p]).split(b"\n"):
                    self.calibrate(client, line + b"\n")
            client.tail = bytes(buf[p + 1 : end])

    def calibrate(self, client: Client, line: bytes) -> None:
        j = line.rfind(b"|")
        k = j + 1 - self.plen
        if j < 0 or k < 0:
            return
        body = line[k : j + 1]
        try:
            sid = int(body[0:4], 16)
            seq = int(body[4:12], 16)
            ts = int(body[12:24], 16)
        except ValueError:
            return
        if seq or sid >= self.spec.senders or body != payload(sid, 0, ts, self.fills):
            return
        if sid == client.sid:
            return
        client.prefix[sid] = line[:k]
        client.eol[sid] = line[j + 1 :]
        if ts > client.cal_rounds[sid]:
            client.cal_rounds[sid] = ts
            client.cal_round = min(client.cal_rounds)

    def sample(self, client: Client, line: bytes) -> None:
        """Check one delivered line whole; time it; check its order."""
        j = line.rfind(b"|")
        k = j + 1 - self.plen
        try:
            if j < 0 or k < 0:
                raise ValueError
            body = line[k : j + 1]
            sid = int(body[0:4], 16)
            seq = int(body[4:12], 16)
            ts = int(body[12:24], 16)
            if (
                sid >= self.spec.senders
                or sid == client.sid
                or line[:k] != client.prefix[sid]
                or line[j + 1 :] != client.eol[sid]
                or body != payload(sid, seq, ts, self.fills)
            ):
                raise ValueError
        except ValueError:
            client.bad_samples += 1
            return
        received = self.rx_us if self.rx_us is not None else now_us()
        latency = (received - ts) & TS_MASK
        self.histogram[bucket(latency)] += 1
        if latency > self.result.max_latency_us:
            self.result.max_latency_us = latency
        if seq <= client.last_seq[sid]:
            client.reordered += seq < client.last_seq[sid]
        else:
            client.last_seq[sid] = seq

    # The end

    def expect(self, finals: dict[int, tuple[int, int]]) -> None:
        for client in self.clients:
            lines = size = total = 0
            lengths = []
            for sid, (sent, sent_sum) in finals.items():
                if sid == client.sid:
                    continue
                prefix = client.prefix[sid] or b""
                eol = client.eol[sid] or b"\n"
                length = len(prefix) + self.plen + len(eol)
                lengths.append(length)
                lines += sent
                size += sent * length
                extra = byte_sum(prefix + eol) - byte_sum(b"\n")
                total += sent_sum + sent * extra
            client.expected = lines
            client.expected_bytes = size
            client.expected_sum = total % ADLER_MOD
            client.min_len = min(lengths, default=0)
            client.max_len = max(lengths, default=0)

    def report(self) -> None:
        result = self.result
        for client in self.clients:
            got = client.lines
            result.lines += got
            result.expected += client.expected
            missing = client.expected - got
            result.lost += max(0, missing)
            result.duplicates += max(0, -missing)
            result.reordered += client.reordered
            result.disconnected += client.closed
            if client.tail:
                result.incomplete += 1
            corrupt = client.bad_samples
            if self.checksum:
                corrupt += abs(client.marks - got)
            diff = client.expected_bytes - client.bytes
            if missing == 0:
                wrong = bool(diff) or (
                    self.checksum and client.sum % ADLER_MOD != client.expected_sum
                )
            elif missing > 0:
                wrong = not (
                    missing * client.min_len <= diff <= missing * client.max_len
                )
            else:
                wrong = not (
                    missing * client.max_len <= diff <= missing * client.min_len
                )
            result.corrupt += max(corrupt, int(wrong))
        result.histogram = self.histogram
        for client in self.clients:
            for sid, prefix in enumerate(client.prefix):
                if prefix is not None:
                    result.delivered_form = (
                        f"{prefix!r} + payload + {client.eol[sid]!r}"
                    )
                    break
            if result.delivered_form:
                break
        self.control.send(("result", result))
        self.finals = None
        self.counting = False


def cpu_times() -> tuple[float, float]:
    """User and system CPU seconds of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _worker_main(
    index: int,
    spec: WorkerSpec,
    control: Connection,
    shared: Any,
    wake: Connection,
    wakers: list[Connection],
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        Worker(index, spec, control, shared, wake, wakers).run()
    except BaseException as e:
        with contextlib.suppress(Exception):
            control.send(("error", f"worker {index}: {e}\n{traceback.format_exc()}"))


# Results


@dataclass
class PointResult:
    """What one run at one point measured."""

    server: str
    receivers: int
    senders: int
    size: int
    window: int
    rate: float | None
    seconds: float
    processes: int
    slow: int = 0
    # Lines received by every connection (receivers, and senders hearing the
    # other senders) during the measured window, and per second.
    deliveries: int = 0
    deliveries_per_s: float = 0.0
    receiver_deliveries_per_s: float = 0.0
    lines_sent: int = 0
    lines_per_s: float = 0.0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_max_ms: float | None = None
    latency_samples: int = 0
    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    corrupt: int = 0
    reordered: int = 0
    disconnected: int = 0
    incomplete: int = 0
    noise: int = 0
    calibration_rounds: int = 0
    delivered_form: str = ""
    server_cpu_pct: float | None = None
    server_cpu_system_pct: float | None = None
    generator_cpu_pct: float = 0.0
    generator_cpu_system_pct: float = 0.0
    generator_reads_per_s: float = 0.0
    generator_cpu_max_process_pct: float = 0.0
    server_rss_before_kib: int | None = None
    server_rss_connected_kib: int | None = None
    server_peak_rss_kib: int | None = None
    rss_per_connection_bytes: float | None = None
    server_tracebacks: int = 0
    limit: str = ""

    def guess_limit(self, cpus: int) -> str:
        """
        What most likely bounded the throughput, from the CPU figures: the
        server (a core busy), the generator (a process's core busy), the
        machine (every core busy between them), the pace asked for, or,
        with nobody busy, the window (lines in flight times latency).
        """
        server = self.server_cpu_pct
        if self.rate is not None and self.lines_per_s >= 0.97 * self.rate:
            return "pace"
        if server is not None and server >= 90:
            return "server"
        if self.generator_cpu_max_process_pct >= 90:
            return "generator"
        if server is None:
            return "?"
        if server + self.generator_cpu_pct >= 85 * cpus:
            return "machine"
        return "window"

    @property
    def connections(self) -> int:
        return self.receivers + self.senders

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.corrupt
            or self.duplicates
            or self.reordered
            or self.disconnected
            or self.incomplete
            or self.noise
            or self.server_tracebacks
        )


@dataclass
class IdleResult:
    """What C{--idle N} measured."""

    server: str
    connections: int
    processes: int
    opened: int = 0
    held: int = 0
    accepted: int | None = None
    connect_seconds: float = 0.0
    settle_seconds: float = 0.0
    bytes_received: int = 0
    server_rss_before_kib: int | None = None
    server_rss_after_kib: int | None = None
    server_peak_rss_kib: int | None = None
    rss_per_connection_bytes: float | None = None
    server_cpu_seconds: float | None = None
    server_tracebacks: int = 0

    @property
    def ok(self) -> bool:
        return self.held == self.connections and not self.server_tracebacks


@dataclass
class Comparison:
    """One point of C{--compare}: every round of both servers."""

    receivers: int
    senders: int
    rate: float | None
    ours: list[PointResult] = field(default_factory=list)
    peer: list[PointResult] = field(default_factory=list)

    @property
    def ours_deliveries_per_s(self) -> float:
        return statistics.median(r.deliveries_per_s for r in self.ours)

    @property
    def peer_deliveries_per_s(self) -> float:
        return statistics.median(r.deliveries_per_s for r in self.peer)

    @property
    def ratio(self) -> float | None:
        peer = self.peer_deliveries_per_s
        return self.ours_deliveries_per_s / peer if peer else None

    @staticmethod
    def _p99(runs: list[PointResult]) -> float | None:
        values = [r.latency_p99_ms for r in runs if r.latency_p99_ms is not None]
        return statistics.median(values) if values else None

    @property
    def ours_p99_ms(self) -> float | None:
        return self._p99(self.ours)

    @property
    def peer_p99_ms(self) -> float | None:
        return self._p99(self.peer)

    def summary(self) -> dict[str, Any]:
        return {
            "point": f"{self.receivers}x{self.senders}",
            "rate": self.rate,
            "ours_deliveries_per_s": self.ours_deliveries_per_s,
            "peer_deliveries_per_s": self.peer_deliveries_per_s,
            "ratio": self.ratio,
            "ours_p99_ms": self.ours_p99_ms,
            "peer_p99_ms": self.peer_p99_ms,
            "ok": all(r.ok for r in self.ours + self.peer),
        }


@dataclass(frozen=True)
class Options:
    """How to load the server at every point."""

    size: int = 64
    window: int = 200
    rate: float | None = None
    seconds: float = 10.0
    drain: float = 5.0
    processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    timeout: float | None = None
    checksum: bool = False
    kernel_time: bool = True
    slow: int = 0

    def deadline(self, connections: int) -> float:
        """Seconds a whole run may take, set-up included."""
        if self.timeout is not None:
            return self.timeout
        return 60.0 + connections / 50 + self.seconds + self.drain + 15.0


# Running the workers


class Progress:
    """One line on standard error, rewritten in place, for people."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.shown = False

    def show(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K" + text)
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = False


class Crew:
    """The worker processes of one run and what they have said."""

    def __init__(
        self, server: Server, specs: list[WorkerSpec], shared: Any, deadline: float
    ) -> None:
        self.server = server
        self.deadline = deadline
        self.shared = shared
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        self.messages: list[dict[str, Any]] = [{} for _ in specs]
        wakes = [context.Pipe(duplex=False) for _ in specs]
        wakers = [writer for _, writer in wakes]
        for index, spec in enumerate(specs):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_worker_main,
                args=(index, spec, theirs, shared, wakes[index][0], wakers),
                daemon=True,
                name=f"chat-bench-{index}",
            )
            process.start()
            theirs.close()
            self.pipes.append(ours)
            self.processes.append(process)
        for reader, writer in wakes:
            reader.close()
            writer.close()

    def send(self, message: tuple[Any, ...], only: Sequence[int] | None = None) -> None:
        for index, pipe in enumerate(self.pipes):
            if only is None or index in only:
                pipe.send(message)

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BenchError("the run's deadline passed (see --timeout)")
        return left

    def receive(self, timeout: float) -> None:
        """Take in what the workers say within C{timeout} seconds."""
        timeout = max(0.0, min(timeout, self.remaining()))
        for ready in wait(self.pipes, timeout):
            assert isinstance(ready, Connection)
            index = self.pipes.index(ready)
            while ready.poll():
                try:
                    message = ready.recv()
                except EOFError:
                    raise BenchError(f"worker {index} exited unexpectedly") from None
                if message[0] == "error":
                    raise BenchError(message[1])
                self.messages[index][message[0]] = message[1:]
        self.server.check_alive()

    def all_said(self, kind: str) -> bool:
        return all(kind in m for m in self.messages)

    def await_all(self, kind: str, timeout: float | None = None) -> None:
        limit = time.monotonic() + (timeout if timeout is not None else 1e9)
        while not self.all_said(kind):
            if time.monotonic() > limit:
                raise BenchError(f"the workers did not all report {kind!r} in time")
            self.receive(0.1)

    def total(self, index: int, workers: int) -> int:
        return sum(self.shared[index + w] for w in range(workers))

    def await_connected(
        self, progress: Progress, label: str, started: int, connections: int
    ) -> None:
        """
        Wait until every worker has opened its connections, showing how many
        are open (the workers' counts start at index C{started}).
        """
        while not self.all_said("connected"):
            self.receive(0.25)
            progress.show(
                f"{label}: connecting "
                f"{self.total(started, len(self.pipes))}/{connections}"
            )

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError, ValueError):
                pipe.send(("exit",))
        for process in self.processes:
            process.join(2)
            if process.is_alive():
                process.terminate()
                process.join(2)
            if process.is_alive():
                process.kill()
                process.join(2)
        for pipe in self.pipes:
            pipe.close()


def _sleep_until(crew: Crew, when: float) -> None:
    while True:
        left = when - time.monotonic()
        if left <= 0:
            return
        crew.receive(left)


def run_point(
    server: Server,
    receivers: int,
    senders: int,
    options: Options | None = None,
    progress: Progress | None = None,
) -> PointResult:
    """
    Measure C{server} with C{receivers} receivers and C{senders} senders in
    one room; see the module docstring.
    """
    options = options or Options()
    progress = progress or Progress(False)
    if receivers < 1 or senders < 1:
        raise BenchError("a point needs at least one receiver and one sender")
    if options.size < MIN_SIZE:
        raise BenchError(f"--size must be at least {MIN_SIZE} bytes")
    if senders > 0xFFFF:
        raise BenchError("at most 65535 senders")
    connections = receivers + senders
    workers = max(1, min(options.processes, connections))
    deadline = time.monotonic() + options.deadline(connections)
    deadline_ns = time.monotonic_ns() + int(options.deadline(connections) * 1e9)
    pid = server.pid
    label = f"{server.label} {receivers}x{senders}"
    result = PointResult(
        server=server.label,
        receivers=receivers,
        senders=senders,
        size=options.size,
        window=options.window,
        rate=options.rate,
        seconds=options.seconds,
        processes=workers,
        slow=options.slow,
    )
    if pid is not None:
        result.server_rss_before_kib = proc_status_kib(pid, "VmRSS")
    i_min, i_total, i_started, _, length = _layout(senders, workers)
    context = multiprocessing.get_context("spawn")
    shared = context.RawArray("q", length)
    for w in range(workers):
        shared[i_min + w] = NOBODY
    # Connection i goes to worker i % workers: receivers first, then
    # senders.
    specs = [
        WorkerSpec(
            host=server.host,
            port=server.port,
            receivers=len(range(w, receivers, workers)),
            sender_ids=tuple(
                i - receivers for i in range(w, connections, workers) if i >= receivers
            ),
            senders=senders,
            workers=workers,
            size=options.size,
            window=options.window,
            rate_per_sender=None if options.rate is None else options.rate / senders,
            server_pid=pid,
            server_fds=None if pid is None else proc_fd_count(pid),
            deadline_ns=deadline_ns,
            checksum=options.checksum,
            kernel_time=options.kernel_time,
            slow=options.slow if w == 0 else 0,
        )
        for w in range(workers)
    ]
    crew = Crew(server, specs, shared, deadline)
    try:
        # Connect.
        crew.await_connected(progress, label, i_started, connections)
        # Calibrate.
        with_senders = [w for w, spec in enumerate(specs) if spec.sender_ids]
        cal_round = 0
        round_ends = 0.0
        while True:
            states = [m.get("calibrated", (-1, 0)) for m in crew.messages]
            if all(lowest >= cal_round >= 1 for lowest, _ in states):
                break
            closed = sum(closed for _, closed in states)
            if closed:
                raise BenchError(
                    f"the server closed connections ({closed} so far, of "
                    f"{connections}) before the measurement (a connection limit?)"
                )
            if time.monotonic() >= round_ends:
                if cal_round >= 20:
                    raise BenchError(
                        f"after {cal_round} rounds of calibration lines, some "
                        "connections still have not heard every sender: does "
                        "the server relay every line to everyone else?"
                    )
                cal_round += 1
                crew.send(("cal", cal_round), only=with_senders)
                round_ends = time.monotonic() + CAL_ROUND_SECONDS + connections / 2000
                progress.show(f"{label}: calibrating (round {cal_round})")
            crew.receive(0.05)
        result.calibration_rounds = cal_round
        if pid is not None:
            rss = proc_status_kib(pid, "VmRSS")
            result.server_rss_connected_kib = rss
            if rss is not None and result.server_rss_before_kib is not None:
                result.rss_per_connection_bytes = (
                    (rss - result.server_rss_before_kib) * 1024 / connections
                )
        # Measure.
        t0 = time.monotonic() + 0.2
        t_end = t0 + options.seconds
        crew.send(("start", int(t0 * 1e9), int(t_end * 1e9)))
        _sleep_until(crew, t0)
        server_cpu0 = None if pid is None else proc_cpu_times(pid)
        last_time, last_lines, last_sent = t0, 0, 0
        while True:
            now = time.monotonic()
            if now >= t_end:
                break
            crew.receive(min(1.0, t_end - now))
            now = time.monotonic()
            if progress.enabled and now - last_time >= 0.99 and now < t_end:
                lines = crew.total(i_total, workers)
                sent = sum(shared[s] for s in range(senders))
                span = now - last_time
                progress.show(
                    f"{label}: {now - t0:4.0f}/{options.seconds:g} s  "
                    f"{(lines - last_lines) / span:12,.0f} deliveries/s  "
                    f"{(sent - last_sent) / span:10,.0f} lines/s sent"
                )
                last_time, last_lines, last_sent = now, lines, sent
        server_cpu1 = None if pid is None else proc_cpu_times(pid)
        if server_cpu0 is not None and server_cpu1 is not None:
            span = options.seconds / 100
            result.server_cpu_pct = (sum(server_cpu1) - sum(server_cpu0)) / span
            result.server_cpu_system_pct = (server_cpu1[1] - server_cpu0[1]) / span
        # Drain.
        progress.show(f"{label}: draining")
        crew.await_all("stopped", timeout=10.0 + options.drain)
        finals: dict[int, tuple[int, int]] = {}
        for m in crew.messages:
            finals.update(m["stopped"][0])
        drain_ends = time.monotonic_ns() + int(options.drain * 1e9)
        crew.send(("finals", finals, drain_ends))
        crew.await_all("result", timeout=options.drain + 10.0)
        if pid is not None:
            result.server_peak_rss_kib = proc_status_kib(pid, "VmHWM")
    finally:
        progress.clear()
        crew.close()
    reports: list[WorkerResult] = [m["result"][0] for m in crew.messages]
    histogram = [sum(h) for h in zip(*(r.histogram for r in reports), strict=True)]
    result.lines_sent = sum(sent for sent, _ in finals.values())
    result.lines_per_s = result.lines_sent / options.seconds
    result.deliveries = sum(r.window_lines for r in reports)
    result.deliveries_per_s = result.deliveries / options.seconds
    result.receiver_deliveries_per_s = (
        sum(r.window_receiver_lines for r in reports) / options.seconds
    )
    result.latency_samples = sum(histogram)
    result.latency_p50_ms = percentile_ms(histogram, 0.50)
    result.latency_p99_ms = percentile_ms(histogram, 0.99)
    if result.latency_samples:
        result.latency_max_ms = max(r.max_latency_us for r in reports) / 1000
    for name in (
        "expected",
        "lost",
        "duplicates",
        "corrupt",
        "reordered",
        "disconnected",
        "incomplete",
        "noise",
    ):
        setattr(result, name, sum(getattr(r, name) for r in reports))
    result.received = sum(r.lines for r in reports)
    forms = {r.delivered_form for r in reports if r.delivered_form}
    result.delivered_form = " | ".join(sorted(forms))
    span = options.seconds / 100
    result.generator_cpu_pct = sum(r.cpu_window for r in reports) / span
    result.generator_reads_per_s = (
        sum(r.window_reads for r in reports) / options.seconds
    )
    result.generator_cpu_system_pct = sum(r.cpu_window_system for r in reports) / span
    result.generator_cpu_max_process_pct = (
        max(r.cpu_window for r in reports) / options.seconds * 100
    )
    result.server_tracebacks = server.tracebacks()
    result.limit = result.guess_limit(os.cpu_count() or 1)
    return result


def run_idle(
    server: Server,
    connections: int,
    options: Options | None = None,
    progress: Progress | None = None,
) -> IdleResult:
    """
    Open C{connections} connections that never say anything, wait until the
    server has accepted them all and the traffic their arrival causes has
    died down, and measure the server's memory.
    """
    options = options or Options()
    progress = progress or Progress(False)
    workers = max(1, min(options.processes, connections))
    timeout = options.deadline(connections)
    deadline = time.monotonic() + timeout
    pid = server.pid
    result = IdleResult(server.label, connections, workers)
    fds_before = None
    cpu0 = None
    if pid is not None:
        result.server_rss_before_kib = proc_status_kib(pid, "VmRSS")
        fds_before = proc_fd_count(pid)
        cpu0 = proc_cpu_times(pid)
    _, _, i_started, _, length = _layout(0, workers)
    context = multiprocessing.get_context("spawn")
    shared = context.RawArray("q", length)
    base, extra = divmod(connections, workers)
    specs = [
        WorkerSpec(
            host=server.host,
            port=server.port,
            receivers=base + (w < extra),
            sender_ids=(),
            senders=0,
            workers=workers,
            size=options.size,
            window=0,
            rate_per_sender=None,
            server_pid=pid,
            server_fds=fds_before,
            deadline_ns=time.monotonic_ns() + int(timeout * 1e9),
            idle=True,
        )
        for w in range(workers)
    ]
    started = time.monotonic()
    crew = Crew(server, specs, shared, deadline)
    try:
        crew.await_connected(progress, f"{server.label} idle", i_started, connections)
        connected = time.monotonic()
        result.connect_seconds = connected - started
        result.opened = sum(m["connected"][0] for m in crew.messages)
        # Settle: everything accepted, and no traffic for half a second.
        while True:
            for m in crew.messages:
                m.pop("status", None)
            crew.send(("status",))
            crew.await_all("status", timeout=10.0)
            statuses = [m["status"] for m in crew.messages]
            held = sum(s[0] for s in statuses)
            heard = sum(s[1] for s in statuses)
            last_rx = max(s[3] for s in statuses) / 1e9
            accepted = None
            if pid is not None and fds_before is not None:
                fds = proc_fd_count(pid)
                accepted = None if fds is None else fds - fds_before
            now = time.monotonic()
            everyone = (
                accepted >= connections if accepted is not None else heard >= held
            )
            quiet = now - max(last_rx, connected) >= 0.5
            progress.show(
                f"{server.label} idle: {held} open, "
                f"{accepted if accepted is not None else heard} accepted, settling"
            )
            if (everyone and quiet) or held < result.opened:
                break
            if now - connected > 30 and quiet:
                # Cannot tell that it accepted them all; measure anyway.
                break
            crew.receive(0.25)
        result.settle_seconds = time.monotonic() - connected
        result.held = held
        result.accepted = accepted
        result.bytes_received = sum(s[2] for s in statuses)
        if pid is not None:
            result.server_rss_after_kib = proc_status_kib(pid, "VmRSS")
            result.server_peak_rss_kib = proc_status_kib(pid, "VmHWM")
            cpu1 = proc_cpu_times(pid)
            if cpu0 is not None and cpu1 is not None:
                result.server_cpu_seconds = sum(cpu1) - sum(cpu0)
            if (
                result.server_rss_after_kib is not None
                and result.server_rss_before_kib is not None
                and result.held
            ):
                result.rss_per_connection_bytes = (
                    (result.server_rss_after_kib - result.server_rss_before_kib)
                    * 1024
                    / result.held
                )
    finally:
        progress.clear()
        crew.close()
    result.server_tracebacks = server.tracebacks()
    return result


# Reporting


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _cpu(total: float | None, system: float | None) -> str:
    if total is None:
        return "-"
    return f"{total:.0f} ({_num(system)})"


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def format_points(results: list[PointResult]) -> str:
    header = [
        "server",
        "point",
        "deliveries/s",
        "sent/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lost",
        "corrupt",
        "dup",
        "reord",
        "srv CPU% (sys)",
        "gen CPU% (sys)",
        "peak RSS MiB",
        "RSS/conn KiB",
        "limit",
    ]
    rows = [
        [
            r.server,
            f"{r.receivers}x{r.senders}",
            _num(r.deliveries_per_s),
            _num(r.lines_per_s),
            _num(r.latency_p50_ms, 2),
            _num(r.latency_p99_ms, 2),
            _num(r.latency_max_ms, 1),
            str(r.lost),
            str(r.corrupt),
            str(r.duplicates),
            str(r.reordered),
            _cpu(r.server_cpu_pct, r.server_cpu_system_pct),
            _cpu(r.generator_cpu_pct, r.generator_cpu_system_pct),
            _mib(r.server_peak_rss_kib),
            _num(
                None
                if r.rss_per_connection_bytes is None
                else r.rss_per_connection_bytes / 1024,
                1,
            ),
            r.limit,
        ]
        for r in results
    ]
    first = results[0]
    pace = (
        f"paced at {first.rate:g} lines/s in all"
        if first.rate is not None
        else "as fast as the window allows"
    )
    notes = [
        f"{first.size}-byte lines, window {first.window} lines per sender, "
        f"{pace}, {first.seconds:g} s measured, {first.processes} generator "
        "processes"
        + (
            f", {first.slow} slow readers present (connected, never reading)."
            if first.slow
            else "."
        ),
        "deliveries/s: lines received by every connection (receivers, and senders "
        "hearing the other senders) per second of the window; CPU% is of one "
        "core (the generator's summed over its processes); limit: what most "
        "likely bounded the run (server or generator: a core busy; machine: "
        f"all {os.cpu_count()} cores busy between them; window: nobody busy, "
        "lines in flight were the limit; pace: --rate met).",
    ]
    for r in results:
        problems = []
        if r.disconnected:
            problems.append(f"{r.disconnected} connections closed by the server")
        if r.incomplete:
            problems.append(f"{r.incomplete} connections ended inside a line")
        if r.noise:
            problems.append(f"{r.noise} connections had stray bytes at the barrier")
        if r.server_tracebacks:
            problems.append(f"{r.server_tracebacks} tracebacks in the server's log")
        if r.limit == "generator":
            problems.append(
                "a generator process used "
                f"{r.generator_cpu_max_process_pct:.0f}% of a core: the generator "
                "was the limit (try --processes)"
            )
        elif r.limit == "machine" and r.generator_cpu_pct > (r.server_cpu_pct or 0):
            problems.append(
                f"the generator used more CPU ({r.generator_cpu_pct:.0f}%) than "
                f"the server ({r.server_cpu_pct:.0f}%) and every core was busy: "
                "this measures the machine more than the server"
            )
        if problems:
            notes.append(
                f"{r.server} {r.receivers}x{r.senders}: " + "; ".join(problems)
            )
    return _table(rows, header) + "\n\n" + "\n".join(notes)


def format_comparisons(
    comparisons: list[Comparison], names: tuple[str, str] = ("ours", "minimal")
) -> str:
    paced = any(c.rate is not None for c in comparisons)
    a, b = names
    header = ["point", f"{a} deliveries/s", f"{b} deliveries/s", f"{a}/{b}"]
    if paced:
        header += [f"{a} p99 ms", f"{b} p99 ms"]
    header.append("lost/corrupt")
    rows = []
    for c in comparisons:
        row = [
            f"{c.receivers}x{c.senders}",
            _num(c.ours_deliveries_per_s),
            _num(c.peer_deliveries_per_s),
            _num(c.ratio, 2),
        ]
        if paced:
            row += [_num(c.ours_p99_ms, 2), _num(c.peer_p99_ms, 2)]
        runs = c.ours + c.peer
        row.append(
            f"{sum(r.lost for r in runs)}/{sum(r.corrupt for r in runs)}"
            + ("" if all(r.ok for r in runs) else " (!)")
        )
        rows.append(row)
    # In the order they ran.
    every = [
        run
        for c in comparisons
        for pair in zip(c.ours, c.peer, strict=True)
        for run in pair
    ]
    return (
        "Every round:\n"
        + format_points(every)
        + "\n\nMedians over the rounds:\n"
        + _table(rows, header)
    )


def format_idle(result: IdleResult) -> str:
    rows = [
        ("server", result.server),
        ("connections asked for", f"{result.connections:,}"),
        ("opened", f"{result.opened:,}"),
        ("still open when measured", f"{result.held:,}"),
        (
            "accepted by the server",
            "-" if result.accepted is None else f"{result.accepted:,}",
        ),
        ("seconds to connect", f"{result.connect_seconds:.1f}"),
        ("seconds to settle", f"{result.settle_seconds:.1f}"),
        ("bytes the server sent them", f"{result.bytes_received:,}"),
        ("server RSS before, MiB", _mib(result.server_rss_before_kib)),
        ("server RSS after, MiB", _mib(result.server_rss_after_kib)),
        ("server peak RSS, MiB", _mib(result.server_peak_rss_kib)),
        (
            "RSS per connection, KiB",
            _num(
                None
                if result.rss_per_connection_bytes is None
                else result.rss_per_connection_bytes / 1024,
                2,
            ),
        ),
        ("server CPU seconds", _num(result.server_cpu_seconds, 2)),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _dump(value: Any) -> Any:
    if isinstance(value, PointResult | IdleResult):
        data = asdict(value)
        data["ok"] = value.ok
        return data
    if isinstance(value, Comparison):
        data = value.summary()
        data["ours"] = [_dump(r) for r in value.ours]
        data["peer"] = [_dump(r) for r in value.peer]
        return data
    return value


# The command line


def parse_points(text: str) -> list[tuple[int, int]]:
    points = []
    for item in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", item)
        if not match:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not RECEIVERSxSENDERS (e.g. 100x5)"
            )
        points.append((int(match.group(1)), int(match.group(2))))
    return points


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host or HOST, int(port)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chat-bench",
        description=(
            "Fan-out benchmark for the chat server: R receivers and S senders "
            "in one room; every line a sender says reaches every other "
            "connection. Starts `twistd -n chat` (flood control and the "
            "per-address cap off) unless told otherwise, and reports "
            "deliveries per second, latency, lost and corrupt lines, and the "
            "server's CPU and memory."
        ),
    )
    p.add_argument(
        "--receivers",
        type=_positive_int,
        default=100,
        help="connections that only listen (default: 100)",
    )
    p.add_argument(
        "--senders",
        type=_positive_int,
        default=5,
        help="connections that say lines, and hear each other (default: 5)",
    )
    p.add_argument(
        "--points",
        type=parse_points,
        help="several RECEIVERSxSENDERS points, e.g. 1000x10,100x5,10x1, each "
        "against a fresh server (instead of --receivers and --senders)",
    )
    p.add_argument(
        "--size",
        type=_positive_int,
        default=64,
        help=f"bytes per line as sent, newline included (default: 64; at least "
        f"{MIN_SIZE})",
    )
    p.add_argument(
        "--window",
        type=_positive_int,
        default=200,
        help="lines per sender not yet delivered to every receiver, at most "
        "(default: 200)",
    )
    p.add_argument(
        "--rate",
        type=_positive_float,
        help="pace the senders at this many lines a second in all "
        "(default: as fast as the window allows)",
    )
    p.add_argument(
        "--seconds",
        type=_positive_float,
        default=10.0,
        help="length of the measured window (default: 10)",
    )
    p.add_argument(
        "--drain",
        type=_positive_float,
        default=5.0,
        help="seconds to wait for the last lines after the senders stop (default: 5)",
    )
    p.add_argument(
        "--processes",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="generator processes (default: one per CPU)",
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        help="hard limit, in seconds, on each run, set-up included (default: "
        "75 + --seconds + --drain + 1 per 50 connections)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--server-command",
        metavar="CMD",
        help="start this instead of our server; it must print its port "
        "(`port=N`, `port N` or `listening on N`), or have {port} in it",
    )
    where.add_argument(
        "--target", type=_target, metavar="HOST:PORT", help="use a running server"
    )
    p.add_argument(
        "--server-pid",
        type=int,
        help="with --target: the server's process, for its CPU and memory",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="run ours and the minimal peer alternately at every point",
    )
    p.add_argument(
        "--history",
        action="store_true",
        help="instead of --compare: run ours with history on (a database "
        "file, the default) and with --no-history alternately at every point, "
        "to show what history costs",
    )
    p.add_argument(
        "--peer",
        default=DEFAULT_PEER,
        help=f"the peer for --compare (default: {DEFAULT_PEER})",
    )
    p.add_argument(
        "--rounds",
        type=_positive_int,
        default=3,
        help="with --compare: runs of each server at each point, alternating "
        "(default: 3)",
    )
    p.add_argument(
        "--idle",
        type=_positive_int,
        metavar="N",
        help="instead: open N idle connections and report memory per connection",
    )
    p.add_argument(
        "--checksum",
        action="store_true",
        help="also check every byte received (a byte sum and a count of the "
        "end-of-payload marker over the whole stream), at the price of two "
        "more passes over it in the generator; without it, a line garbled "
        "without changing its length is caught only if it is the sampled one",
    )
    p.add_argument(
        "--slow",
        type=int,
        default=0,
        metavar="N",
        help="also connect N slow readers that never read (small receive "
        "buffers): the others must still get every line",
    )
    p.add_argument(
        "--latency",
        choices=["kernel", "app"],
        default="kernel",
        help="when a line counts as received: when the kernel put it in the "
        "receiving socket (SO_TIMESTAMPNS; the default, so that the time the "
        "generator takes to get round to reading it is not blamed on the "
        "server), or when the generator read it",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


@contextlib.contextmanager
def _server(
    args: argparse.Namespace, command: list[str] | None, label: str
) -> Iterator[Server]:
    if args.target is not None:
        host, port = args.target
        yield Server(label, host, port, args.server_pid)
        return
    with launched(command or ours_command(), label) as server:
        yield server


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    raise_nofile()
    options = Options(
        size=args.size,
        window=args.window,
        rate=args.rate,
        seconds=args.seconds,
        drain=args.drain,
        processes=args.processes,
        timeout=args.timeout,
        checksum=args.checksum,
        kernel_time=args.latency == "kernel",
        slow=args.slow,
    )
    progress = Progress(sys.stderr.isatty() and not args.json)
    points = args.points or [(args.receivers, args.senders)]
    if args.server_command:
        command = shlex.split(args.server_command)
        label = label_for(command)
    else:
        command, label = ours_command(), "ours"
    if args.target is not None:
        label = "target"
    output: dict[str, Any]
    try:
        if args.idle is not None:
            with _server(args, command, label) as server:
                idle = run_idle(server, args.idle, options, progress)
            output = {"mode": "idle", "result": _dump(idle)}
            text = format_idle(idle)
            ok = idle.ok
        elif args.compare or args.history:
            if args.target is not None:
                raise BenchError("--compare starts both servers; it takes no --target")
            if args.history:
                other, other_label = [*command, NO_HISTORY], "no-history"
                names = ("history", "no-history")
            else:
                peer = Path(args.peer).resolve()
                if not peer.is_file():
                    raise BenchError(f"no peer at {peer} (see --peer)")
                other, other_label = peer_command(peer), peer.stem
                names = ("ours", "minimal")
            comparisons = []
            for receivers, senders in points:
                comparison = Comparison(receivers, senders, args.rate)
                for _ in range(args.rounds):
                    for runs, cmd, name in (
                        (comparison.ours, command, label),
                        (comparison.peer, other, other_label),
                    ):
                        with launched(cmd, name) as server:
                            runs.append(
                                run_point(server, receivers, senders, options, progress)
                            )
                comparisons.append(comparison)
            output = {
                "mode": "compare",
                "points": [_dump(c) for c in comparisons],
            }
            text = format_comparisons(comparisons, names)
            ok = all(r.ok for c in comparisons for r in c.ours + c.peer)
        else:
            results = []
            for receivers, senders in points:
                with _server(args, command, label) as server:
                    results.append(
                        run_point(server, receivers, senders, options, progress)
                    )
            output = {"mode": "points", "runs": [_dump(r) for r in results]}
            text = format_points(results)
            ok = all(r.ok for r in results)
    except BenchError as e:
        progress.clear()
        print(f"chat-bench: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        progress.clear()
        print("chat-bench: interrupted", file=sys.stderr)
        return 130
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(output) if args.json else text, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
