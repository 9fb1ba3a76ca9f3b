#!/usr/bin/env python3
"""
A bounded stress run against the chatservice server.

It starts a real ``twistd -n chat`` (or uses ``--server HOST:PORT``) and, for
``--seconds``, runs at once from one asyncio event loop:

- well-behaved chatters, each with a nickname, saying a numbered line with an
  embedded send time every few hundred milliseconds (always slower than the
  server's flood rate) and reading everything;
- flooders, blasting thousands of lines of hostile bytes (escape sequences,
  invalid UTF-8, over-long lines, telnet IAC, control and bidi characters,
  commands), reconnecting after each kick, a bounded number of times;
- stalled readers, with a small receive buffer, that never read, so that the
  server's SendQ limit disconnects them;
- random disconnectors, connecting and dropping in a loop (RST, close,
  half-close, /quit, half a line).

The started server gets ``--max-per-ip 0 --max-clients 0`` and the limits
given here (the server's defaults unless changed); all traffic stays on
127.0.0.1.

Every chatter checks every line from every other chatter: lines are numbered
per sender, so lost lines, out-of-order deliveries and duplicates are counted
exactly. All chatters have joined (their ``/nick`` is confirmed, so the
server has processed their join) before anyone says a numbered line, so every
numbered line must reach every other chatter. When the time is up the
chatters stop, each says an end marker with its last number, and the run
waits for every end marker (at most ``--drain`` seconds) before counting.

At the end the server is stopped with SIGTERM and its log is scanned for
tracebacks. The exit status is 0 only if no line was lost, none came out of
order or twice, nothing was logged as a traceback, every chatter stayed
connected and the server stopped cleanly; otherwise 1 (2 for a run that could
not start).

    python bench/stress.py --seconds 20
    python bench/stress.py --server 127.0.0.1:12345 --server-pid 4242
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from chatservice.bench.launch import (
    HOST,
    spawn_logged,
    stop_process_group,
    twistd_path,
    wait_for_port,
)
from chatservice.bench.proc import cpu_times, proc_cpu_times, proc_status

T = TypeVar("T")

MAX_SECONDS = 600.0
ROOM = b"lobby"
LISTENING = re.compile(rb"Chat server listening on IPv4Address\(.*port=(\d+)\)")
TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8
MIB = 1024 * 1024


def now_us() -> int:
    """Microseconds on the clock every client shares (one process)."""
    return time.perf_counter_ns() // 1000


# Configuration


@dataclass(frozen=True)
class Config:
    seconds: float
    chatters: int
    flooders: int
    stalled: int
    disconnectors: int
    interval: tuple[float, float]
    pad: int
    drain: float
    flood_reconnects: int
    stall_reconnects: int
    disconnect_cycles: int
    server: tuple[str, int] | None
    server_pid: int | None
    server_log: Path | None
    keep_log: Path | None
    flood_rate: float
    flood_burst: int
    flood_queue: int
    sendq: int
    max_line: int
    seed: int
    json: bool


def parse_args(argv: list[str]) -> Config:
    parser = argparse.ArgumentParser(
        description="Bounded stress run against a chatservice server.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration")
    parser.add_argument(
        "--chatters", type=int, default=20, help="well-behaved, checked clients"
    )
    parser.add_argument(
        "--flooders", type=int, default=3, help="clients flooding hostile bytes"
    )
    parser.add_argument(
        "--stalled", type=int, default=3, help="clients that never read"
    )
    parser.add_argument(
        "--disconnectors",
        type=int,
        default=4,
        help="clients connecting and dropping in a loop",
    )
    parser.add_argument(
        "--interval",
        type=float,
        nargs=2,
        default=(0.2, 0.4),
        metavar=("MIN", "MAX"),
        help="seconds between a chatter's lines (MIN must be >= 1/flood-rate)",
    )
    parser.add_argument(
        "--pad", type=int, default=100, help="filler bytes in each chatter line"
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=5.0,
        help="longest wait for the chatters' end markers",
    )
    parser.add_argument(
        "--flood-reconnects", type=int, default=1000, help="connections per flooder"
    )
    parser.add_argument(
        "--stall-reconnects",
        type=int,
        default=100,
        help="connections per stalled reader",
    )
    parser.add_argument(
        "--disconnect-cycles",
        type=int,
        default=5000,
        help="connections per disconnector",
    )
    parser.add_argument(
        "--server",
        metavar="HOST:PORT",
        help="use this running server (127.0.0.1 only) instead of starting one",
    )
    parser.add_argument(
        "--server-pid", type=int, help="with --server: its pid, to sample its RSS"
    )
    parser.add_argument(
        "--server-log",
        type=Path,
        help="with --server: its log file, scanned for tracebacks",
    )
    parser.add_argument(
        "--keep-log", type=Path, help="copy the started server's log here"
    )
    limits = parser.add_argument_group(
        "limits of the started server (with --server: what it is assumed to use)"
    )
    limits.add_argument("--flood-rate", type=float, default=5.0, help="lines/s")
    limits.add_argument("--flood-burst", type=int, default=20, help="lines")
    limits.add_argument("--flood-queue", type=int, default=100, help="lines")
    limits.add_argument("--sendq", type=int, default=1024 * 1024, help="bytes")
    limits.add_argument("--max-line", type=int, default=4096, help="bytes")
    parser.add_argument("--seed", type=int, help="random seed; random if not given")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)

    if not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be in (0, {MAX_SECONDS:g}]")
    if not 0 < args.drain <= 60:
        parser.error("--drain must be in (0, 60]")
    if args.chatters < 2:
        parser.error("--chatters must be at least 2")
    for name in ("flooders", "stalled", "disconnectors"):
        if not 0 <= getattr(args, name) <= 100:
            parser.error(f"--{name} must be in [0, 100]")
    if args.chatters > 500:
        parser.error("--chatters must be at most 500")
    low, high = args.interval
    if not 0 < low <= high <= 10:
        parser.error("--interval needs 0 < MIN <= MAX <= 10")
    if args.flood_rate > 0 and low < 1 / args.flood_rate:
        parser.error(
            f"--interval MIN {low:g} s is faster than the flood rate "
            f"({args.flood_rate:g} lines/s): chatters would be held back"
        )
    pad = max(0, min(args.pad, 2000))
    if pad + 40 > args.max_line:
        parser.error(f"--pad {pad}: chatter lines would not fit in --max-line")
    server: tuple[str, int] | None = None
    if args.server:
        host, _, port = args.server.rpartition(":")
        if host != HOST or not port.isdigit():
            parser.error(f"--server must be {HOST}:PORT")
        server = (host, int(port))
    elif args.server_pid or args.server_log:
        parser.error("--server-pid and --server-log go with --server")
    return Config(
        seconds=args.seconds,
        chatters=args.chatters,
        flooders=args.flooders,
        stalled=args.stalled,
        disconnectors=args.disconnectors,
        interval=(low, high),
        pad=pad,
        drain=args.drain,
        flood_reconnects=max(1, min(args.flood_reconnects, 10_000)),
        stall_reconnects=max(1, min(args.stall_reconnects, 1000)),
        disconnect_cycles=max(1, min(args.disconnect_cycles, 100_000)),
        server=server,
        server_pid=args.server_pid,
        server_log=args.server_log,
        keep_log=args.keep_log,
        flood_rate=args.flood_rate,
        flood_burst=args.flood_burst,
        flood_queue=args.flood_queue,
        sendq=args.sendq,
        max_line=args.max_line,
        seed=args.seed if args.seed is not None else random.randrange(1 << 32),
        json=args.json,
    )


# The server


class SetupError(Exception):
    """The run could not start."""


@dataclass
class ServerUsage:
    rss_start_kib: int = 0
    rss_max_kib: int = 0
    rss_end_kib: int = 0
    hwm_kib: int = 0
    cpu_start: float | None = None
    cpu_seconds: float = 0.0
    samples: int = 0


def read_status(pid: int) -> tuple[int, int] | None:
    """VmRSS and VmHWM of C{pid}, in KiB."""
    values = proc_status(pid, "VmRSS", "VmHWM")
    if values is None or "VmRSS" not in values:
        return None
    return values["VmRSS"], values.get("VmHWM", values["VmRSS"])


class SpawnedServer:
    """A C{twistd -n chat} in a temporary directory, logging to a file there."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.directory = Path(tempfile.mkdtemp(prefix="chat-stress-"))
        self.log_path = self.directory / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.died_early = False
        self.stop_seconds: float | None = None
        self.killed = False

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def command(self) -> list[str]:
        twistd = twistd_path()
        if not twistd.exists():
            raise SetupError(f"no twistd next to {sys.executable}")
        c = self.config
        return [
            str(twistd),
            "-n",
            "chat",
            "--port",
            f"tcp:0:interface={HOST}",
            "--max-per-ip",
            "0",
            "--max-clients",
            "0",
            "--flood-rate",
            f"{c.flood_rate:g}",
            "--flood-burst",
            str(c.flood_burst),
            "--flood-queue",
            str(c.flood_queue),
            "--sendq",
            str(c.sendq),
            "--max-line",
            str(c.max_line),
        ]

    def start(self) -> tuple[str, int]:
        command = self.command()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = spawn_logged(command, self.log_path, self.directory, env)
        port = wait_for_port(self.process, self.log_path, 20, LISTENING, interval=0.05)
        if port is not None:
            return HOST, port
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise SetupError(
            f"twistd did not report a listening port: {' '.join(command)}\n{tail}"
        )

    async def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is not None:
            self.died_early = True
            self.returncode = process.returncode
            return
        started = time.monotonic()
        self.killed = await asyncio.to_thread(stop_process_group, process, 15)
        self.returncode = process.returncode
        if not self.killed:
            self.stop_seconds = time.monotonic() - started

    def kill_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(15)

    def cleanup(self) -> None:
        if self.config.keep_log is not None and self.log_path.exists():
            shutil.copyfile(self.log_path, self.config.keep_log)
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class LogScan:
    tracebacks: int = 0
    excerpts: list[str] = field(default_factory=list)
    excess_flood: int = 0
    sendq_exceeded: int = 0
    lines: int = 0
    shut_down: bool = False


def scan_log(data: bytes) -> LogScan:
    """
    Count the tracebacks in a Twisted log: every C{Traceback} and every
    C{Unhandled Error} not followed by one within three lines.
    """
    scan = LogScan()
    lines = data.decode("utf-8", "replace").splitlines()
    scan.lines = len(lines)
    for i, line in enumerate(lines):
        if "disconnected: excess flood" in line:
            scan.excess_flood += 1
        elif "disconnected: SendQ exceeded" in line:
            scan.sendq_exceeded += 1
        elif "Server Shut Down." in line:
            scan.shut_down = True
        traceback = "Traceback (most recent call last)" in line
        unhandled = "unhandled error" in line.lower() and not any(
            "Traceback" in later for later in lines[i + 1 : i + 4]
        )
        if traceback or unhandled:
            scan.tracebacks += 1
            if len(scan.excerpts) < 3:
                scan.excerpts.append(excerpt(lines, i))
    return scan


def excerpt(lines: list[str], at: int) -> str:
    """The log event at C{lines[at]}: its header and indented continuation."""
    start = at - 1 if at and "unhandled error" in lines[at - 1].lower() else at
    end = at + 1
    while end < len(lines) and end - start < 40 and lines[end][:1] in ("\t", " ", ""):
        end += 1
    return "\n".join(lines[start:end]).rstrip()


# Clients


class Stop(Exception):
    """The run is over."""


class LineConnection(asyncio.Protocol):
    """Frames lines (without C{\\r\\n}) and records when each chunk arrived."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.bytes_in = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        received = now_us()
        lines = (self.buffer + data).split(b"\n")
        self.buffer = lines.pop()
        if len(self.buffer) > 1 << 20:
            self.buffer = b""
        for line in lines:
            self.line_received(line.removesuffix(b"\r"), received)

    def line_received(self, line: bytes, received: int) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, data: bytes) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        transport.write(data)
        return True

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


@dataclass
class Observed:
    """Room events that the observing chatter saw."""

    quits: dict[str, int] = field(default_factory=dict)

    def quit_seen(self, reason: str) -> None:
        self.quits[reason] = self.quits.get(reason, 0) + 1


class Chatter(LineConnection):
    """
    A well-behaved client: says numbered lines (C{S SEQ SENT_US PAD}) and an
    end marker (C{E LAST_SEQ}), and checks the numbered lines of the others.
    """

    def __init__(self, run: Run, index: int) -> None:
        super().__init__()
        self.run = run
        self.index = index
        self.nick = chatter_nick(index)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.drained: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        n = run.config.chatters
        self.seen = [bytearray() for _ in range(n)]
        self.highest = [0] * n
        self.received = [0] * n
        self.ends: list[int | None] = [None] * n
        self.waiting_for_ends = set(range(n)) - {index}
        self.sent = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.errors: list[bytes] = []
        self.malformed = 0
        self.lost_connection_at: float | None = None
        self.observer = index == 0

    def line_received(self, line: bytes, received: int) -> None:
        if line.startswith(b"[lobby] <-- "):
            if self.observer:
                self.room_event(line)
        elif line.startswith(b"[lobby] <"):
            end = line.find(b"> ", 9)
            if end < 0:
                return
            sender = self.run.chatter_by_nick.get(line[9:end])
            if sender is not None:
                self.chat_line(sender, line[end + 2 :], received)
        elif line.startswith(b"*** Welcome"):
            self.send(f"/nick {self.nick}\n".encode())
        elif line.startswith(b"*** You are now known as "):
            if not self.ready.done():
                self.ready.set_result(None)
        elif line.startswith(b"!!! "):
            if len(self.errors) < 10:
                self.errors.append(line)

    def room_event(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        _, _, rest = text[len("[lobby] <-- ") :].partition(" ")
        if rest.startswith("quit (") and rest.endswith(")"):
            self.run.observed.quit_seen(rest[len("quit (") : -1])

    def chat_line(self, sender: int, body: bytes, received: int) -> None:
        parts = body.split(b" ", 3)
        try:
            if parts[0] == b"S":
                seq, sent = int(parts[1]), int(parts[2])
            elif parts[0] == b"E":
                self.end_marker(sender, int(parts[1]))
                return
            else:
                raise ValueError(body)
        except (ValueError, IndexError):
            self.malformed += 1
            return
        seen = self.seen[sender]
        if seq >= len(seen):
            seen.extend(bytes(seq + 256 - len(seen)))
        if seen[seq]:
            self.duplicates += 1
            return
        seen[seq] = 1
        self.received[sender] += 1
        if seq < self.highest[sender] or self.ends[sender] is not None:
            self.out_of_order += 1
        else:
            self.highest[sender] = seq
        self.run.latencies_us.append(received - sent)

    def end_marker(self, sender: int, last: int) -> None:
        if self.ends[sender] is not None:
            self.duplicates += 1
            return
        self.ends[sender] = last
        self.waiting_for_ends.discard(sender)
        if not self.waiting_for_ends and not self.drained.done():
            self.drained.set_result(None)

    def say(self, seq: int) -> bool:
        pad = self.run.pad
        return self.send(f"S {seq} {now_us()} {pad}\n".encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.run.closing_chatters:
            self.lost_connection_at = time.monotonic()
        if not self.ready.done():
            said = f"; the server said {self.errors[0]!r}" if self.errors else ""
            if b"Too many connections" in b"".join(self.errors):
                said += " (run the server with --max-per-ip 0)"
            self.ready.set_exception(
                SetupError(f"chatter {self.nick} was disconnected before joining{said}")
            )
        super().connection_lost(exc)


def chatter_nick(index: int) -> str:
    return f"c{index:03d}"


class Flooder(LineConnection):
    """Reads and discards everything, noting the excess-flood error."""

    def __init__(self) -> None:
        super().__init__()
        self.kicked = False
        self.tail = b""

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if not self.kicked:
            window = self.tail + data
            if b"!!! Excess flood" in window:
                self.kicked = True
            self.tail = window[-32:]


def hostile_lines(max_line: int) -> list[bytes]:
    """Short lines a hostile client might send, without their endings."""
    return [
        b"\x1b[2J\x1b[H\x1b]0;owned\x07 cleared your screen",
        b"\x1b]52;c;ZWNobyBwd25lZA==\x07 clipboard write",
        b"\x1b[31mred\x1b[0m \x1b[5mblink\x1b[25m \x1b[?1049h alt screen",
        b"\x1bP+q544e\x1b\\ DCS query \x1b_APC\x1b\\ \x1b^PM\x1b\\",
        b"\xc2\x9b31m C1 CSI \xc2\x9d0;title\xc2\x9c \xc2\x85 NEL",
        b"bad utf8 \xff\xfe\xc3\x28 \xe2\x82 \xf0\x9f\x98 \xed\xa0\x80 \xc0\xaf",
        b"\xff\xfb\x01\xff\xfd\x03\xff\xfa\x18\x01\xff\xf0 telnet IAC",
        b"\xff\xff\xff\xf4\xff\xfd\x06 IAC IP DO TM \xff",
        "bidi \u202eevil\u202c \u2066iso\u2069 \u2028sep\u2029".encode(),
        "zero\u200bwidth\u200d joiners and \ufeff BOM".encode(),
        b"nul\x00del\x7fbell\x07bs\x08tab\there\rcarriage",
        b"   ",
        b"",
        b"\t\t",
        b"//slash line",
        b"/who",
        b"/rooms",
        b"/help",
        b"/help nick",
        b"/nick server",
        b"/nick \x1b[31mred",
        b"/nick " + b"n" * 40,
        b"/join #flood-room",
        b"/join lobby",
        b"/part flood-room",
        b"/me \x1b[2J flips a table",
        b"/msg c000 \x1b]0;hi\x07 private hello",
        b"/msg nobody-here hello",
        b"/whatever unknown command",
        b"/NICK",
        "emoji \U0001f600 and combining e\u0301\u0301\u0301 text".encode(),
        b"A" * (max_line + 1),
        b"B" * (max_line * 3),
        "\u00e9".encode() * (max_line // 2 + 1),
    ]


def long_relayed_line(rng: random.Random, max_line: int) -> bytes:
    """A long line that the server accepts and relays to the whole room."""
    size = rng.randrange(max_line * 3 // 4, max_line + 1)
    words = b"a long line that fills the buffers of everyone who does not read "
    line = bytearray(b"\x1b[1m\xff\xfd\x01\xe2\x80\xae")
    while len(line) < size:
        line += words
    return bytes(line[:size])


def flood_blast(rng: random.Random, max_line: int, burst: int, lines: int) -> bytes:
    """
    First a burst of long relayable lines (they go through before the flood
    limit bites, and fill the buffers of everyone who does not read), then a
    line too long to buffer (refused while it is still arriving), then
    thousands of hostile lines, mostly short, with mixed line endings.
    """
    hostile = hostile_lines(max_line)
    short = [line for line in hostile if len(line) <= max_line]
    out = [long_relayed_line(rng, max_line) + b"\n" for _ in range(burst)]
    out.append(b"C" * (max_line * 50) + b"\n")
    for _ in range(lines):
        pool = hostile if rng.random() < 0.02 else short
        out.append(rng.choice(pool) + (b"\r\n" if rng.random() < 0.3 else b"\n"))
    return b"".join(out)


@dataclass
class LoadCounts:
    flood_connections: int = 0
    flood_kicks_seen: int = 0
    flood_closed_without_kick: int = 0
    flood_bytes_sent: int = 0
    stall_connections: int = 0
    stall_resets: int = 0
    disconnect_connections: int = 0
    disconnect_rst: int = 0
    disconnect_close: int = 0
    disconnect_graceful: int = 0
    graceful_kicked: int = 0
    graceful_without_goodbye: int = 0
    connect_failures: int = 0


class Run:
    """Everything one stress run shares."""

    def __init__(self, config: Config, address: tuple[str, int]) -> None:
        self.config = config
        self.address = address
        self.rng = random.Random(config.seed)
        self.loop = asyncio.get_running_loop()
        self.pad = "x" * config.pad
        self.chatters: list[Chatter] = []
        self.chatter_by_nick = {
            chatter_nick(i).encode(): i for i in range(config.chatters)
        }
        self.latencies_us: list[int] = []
        self.observed = Observed()
        self.counts = LoadCounts()
        self.closing_chatters = False
        # Set when the time is up. Load loops check it as well as being
        # cancelled: on Python 3.11 asyncio.wait_for can swallow a
        # cancellation that races with its inner future.
        self.stopping = False
        self.blasts = [
            flood_blast(
                self.rng,
                config.max_line,
                min(config.flood_burst, 100),
                self.rng.randrange(2000, 5000),
            )
            for _ in range(6)
        ]
        self.hostile = hostile_lines(config.max_line)

    async def try_connect(
        self, connecting: Awaitable[T], retry_after: float
    ) -> T | None:
        """
        The connection C{connecting} opens; None if it fails, after counting
        the failure and pausing C{retry_after} seconds.
        """
        try:
            return await connecting
        except OSError:
            self.counts.connect_failures += 1
            await asyncio.sleep(retry_after)
            return None

    async def connect(self, protocol: LineConnection) -> LineConnection:
        await self.loop.create_connection(lambda: protocol, *self.address)
        return protocol

    async def raw_socket(self, rcvbuf: int | None = None) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await self.loop.sock_connect(sock, self.address)
        except BaseException:
            sock.close()
            raise
        return sock

    # Chatters

    async def start_chatters(self) -> None:
        for i in range(self.config.chatters):
            chatter = Chatter(self, i)
            self.chatters.append(chatter)
            await self.connect(chatter)
        await asyncio.wait_for(
            asyncio.gather(*(c.ready for c in self.chatters)), timeout=20
        )

    async def talk(self, chatter: Chatter, until: float) -> None:
        low, high = self.config.interval
        rng = random.Random(self.rng.random())
        seq = 0
        await asyncio.sleep(rng.uniform(0, high))
        while self.loop.time() < until:
            if not chatter.say(seq + 1):
                break
            seq += 1
            chatter.sent = seq
            await asyncio.sleep(rng.uniform(low, high))
        chatter.send(f"E {seq}\n".encode())

    # Flooders

    async def flood(self, index: int) -> None:
        rng = random.Random(self.rng.random())
        counts = self.counts
        for _ in range(self.config.flood_reconnects):
            if self.stopping:
                return
            flooder = Flooder()
            if await self.try_connect(self.connect(flooder), 0.5) is None:
                continue
            counts.flood_connections += 1
            try:
                await self.flood_once(flooder, rng)
            finally:
                flooder.abort()
            if flooder.kicked:
                counts.flood_kicks_seen += 1
            elif flooder.closed.done():
                counts.flood_closed_without_kick += 1
            await asyncio.sleep(rng.uniform(0.02, 0.2))

    async def flood_once(self, flooder: Flooder, rng: random.Random) -> None:
        mode = rng.choices(["blast", "stream", "half-close"], [6, 2, 2])[0]
        counts = self.counts
        if mode == "blast":
            # Thousands of lines at once: the burst goes through, the rest
            # overflows the flood queue at once.
            data = rng.choice(self.blasts)
            flooder.send(data)
            counts.flood_bytes_sent += len(data)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(flooder.closed), 10)
        elif mode == "stream":
            # Faster than the flood rate but not by much, so that lines are
            # held and released by the server's timer before the kick.
            while not flooder.closed.done() and not self.stopping:
                lines = rng.randrange(8, 24)
                batch = b"".join(rng.choice(self.hostile) + b"\n" for _ in range(lines))
                if not flooder.send(batch):
                    break
                counts.flood_bytes_sent += len(batch)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(flooder.closed), 0.2)
        else:
            # A pile of held lines, then end of input: the server must work
            # through them at its own rate (or kick) and then close.
            burst, queue = self.config.flood_burst, self.config.flood_queue
            if rng.random() < 0.5:
                lines = burst + rng.randrange(1, 10)  # held, then worked off
            else:
                lines = burst + queue + rng.randrange(1, 100)  # kicked
            data = b"".join(rng.choice(self.hostile) + b"\n" for _ in range(lines))
            flooder.send(data)
            counts.flood_bytes_sent += len(data)
            if flooder.transport is not None and flooder.transport.can_write_eof():
                flooder.transport.write_eof()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(flooder.closed), 60)

    # Stalled readers

    async def stall(self, index: int) -> None:
        counts = self.counts
        for attempt in range(self.config.stall_reconnects):
            if self.stopping:
                return
            sock = await self.try_connect(self.raw_socket(rcvbuf=4096), 0.5)
            if sock is None:
                continue
            counts.stall_connections += 1
            try:
                with contextlib.suppress(OSError):
                    sock.send(f"/nick s{index}x{attempt}\n".encode())
                while tcp_state(sock) not in (TCP_CLOSE, TCP_CLOSE_WAIT):
                    if self.stopping:
                        return
                    await asyncio.sleep(0.1)
                counts.stall_resets += 1
            finally:
                reset(sock)
            await asyncio.sleep(0.2)

    # Random disconnectors

    async def disconnect_loop(self, index: int) -> None:
        rng = random.Random(self.rng.random())
        counts = self.counts
        modes = [
            "rst-at-once",
            "close-at-once",
            "say-rst",
            "half-line-rst",
            "nick-say-close",
            "join-say-rst",
            "half-close",
            "quit",
        ]
        for cycle in range(self.config.disconnect_cycles):
            if self.stopping:
                return
            sock = await self.try_connect(self.raw_socket(), 0.2)
            if sock is None:
                continue
            counts.disconnect_connections += 1
            mode = rng.choice(modes)
            try:
                await self.disconnect_once(sock, mode, f"d{index}x{cycle}", rng)
            except OSError:
                pass
            finally:
                if mode in ("close-at-once", "nick-say-close"):
                    counts.disconnect_close += 1
                    sock.close()
                elif mode in ("half-close", "quit"):
                    counts.disconnect_graceful += 1
                    sock.close()
                else:
                    counts.disconnect_rst += 1
                    reset(sock)
            await asyncio.sleep(rng.uniform(0.005, 0.05))

    async def disconnect_once(
        self, sock: socket.socket, mode: str, nick: str, rng: random.Random
    ) -> None:
        loop = self.loop
        if mode in ("rst-at-once", "close-at-once"):
            return
        await read_until(loop, sock, b"\n", 5)
        if mode == "say-rst":
            await loop.sock_sendall(sock, b"hello and goodbye\n")
        elif mode == "half-line-rst":
            await loop.sock_sendall(sock, b"half a li")
        elif mode == "nick-say-close":
            await loop.sock_sendall(sock, f"/nick {nick}\nbrb\n".encode())
        elif mode == "join-say-rst":
            room = f"r{rng.randrange(5)}"
            await loop.sock_sendall(sock, f"/join {room}\nhi {room}\n".encode())
        elif mode == "half-close":
            await loop.sock_sendall(
                sock, f"/nick {nick}\nlast words\nno newline".encode()
            )
            sock.shutdown(socket.SHUT_WR)
            await self.expect_goodbye(sock)
        else:
            await loop.sock_sendall(sock, b"/quit so long\n")
            await self.expect_goodbye(sock)

    async def expect_goodbye(self, sock: socket.socket) -> None:
        data = await read_until(self.loop, sock, None, 10)
        if b"*** Goodbye." in data:
            return
        if b"!!! Excess flood" in data:
            self.counts.graceful_kicked += 1
        else:
            self.counts.graceful_without_goodbye += 1


async def read_until(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    marker: bytes | None,
    timeout: float,
) -> bytes:
    """Read until C{marker} (or end of input if None), at most C{timeout} s."""
    data = bytearray()
    deadline = loop.time() + timeout
    while marker is None or marker not in data:
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), left)
        except (TimeoutError, OSError):
            break
        if not chunk:
            break
        data += chunk
        if len(data) > 1 << 20:
            del data[: -(1 << 16)]
    return bytes(data)


def tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of C{sock} (Linux C{TCP_INFO})."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return TCP_CLOSE
    return info[0]


def reset(sock: socket.socket) -> None:
    """Close C{sock} with a RST: linger on, timeout zero."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def sample_usage(pid: int, usage: ServerUsage, interval: float = 0.2) -> None:
    while True:
        status = read_status(pid)
        if status is None:
            return
        rss, hwm = status
        if not usage.samples:
            usage.rss_start_kib = rss
        usage.samples += 1
        usage.rss_max_kib = max(usage.rss_max_kib, rss)
        usage.rss_end_kib = rss
        usage.hwm_kib = max(usage.hwm_kib, hwm)
        times = proc_cpu_times(pid)
        if times is not None:
            cpu = sum(times)
            if usage.cpu_start is None:
                usage.cpu_start = cpu
            usage.cpu_seconds = cpu - usage.cpu_start
        await asyncio.sleep(interval)


# Results


def percentile(ordered: list[int], fraction: float) -> float:
    if not ordered:
        return 0.0
    rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[rank] / 1000


def count_lost(chatters: list[Chatter]) -> tuple[int, int, int]:
    """
    Lost lines, expected deliveries and received deliveries. A line is
    expected by every other chatter that stayed connected; for a pair where
    one side lost its connection only gaps below the highest number received
    count.
    """
    lost = expected = received = 0
    for receiver in chatters:
        for sender in chatters:
            if sender is receiver:
                continue
            got = receiver.received[sender.index]
            received += got
            whole = (
                receiver.lost_connection_at is None
                and sender.lost_connection_at is None
            )
            wanted = sender.sent if whole else receiver.highest[sender.index]
            expected += wanted
            lost += max(0, wanted - got)
    return lost, expected, received


def iter_rows(report: dict[str, Any]) -> Iterator[str]:
    r = report
    c = r["clients"]
    lat = r["latency_ms"]
    srv = r["server"]
    yield (
        f"chatservice stress: {r['duration_s']:.1f} s of load on "
        f"{r['address']} ({srv['kind']}), seed {r['seed']}"
    )
    yield (
        f"clients:        {c['chatters']} chatters, {c['flooders']} flooders "
        f"({c['flood_connections']} connections), {c['stalled']} stalled readers "
        f"({c['stall_connections']} connections), {c['disconnectors']} "
        f"disconnectors ({c['disconnect_connections']} connections: "
        f"{c['disconnect_rst']} RST, {c['disconnect_close']} close, "
        f"{c['disconnect_graceful']} half-close or /quit)"
    )
    yield (
        f"chat lines:     {r['lines_sent']} sent, {r['deliveries_expected']} "
        f"deliveries expected, {r['deliveries_received']} received"
    )
    yield f"lost lines:     {r['lost']}"
    yield f"out of order:   {r['out_of_order']}"
    yield f"duplicates:     {r['duplicates']}"
    yield (
        f"latency:        p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, "
        f"max {lat['max']:.1f} ms ({lat['samples']} lines)"
    )
    drain = r["drain"]
    yield (
        "drain:          "
        + (
            f"every end marker in {drain['seconds']:.2f} s"
            if drain["complete"]
            else f"INCOMPLETE after {drain['seconds']:.2f} s "
            f"({drain['missing_markers']} end markers missing)"
        )
    )
    yield (
        f"flood kicks:    {r['flood_disconnects']} seen by flooders "
        f"('!!! Excess flood'), {r['observed_quits'].get('excess flood', 0)} "
        f"quit lines seen in the room, {srv['log_excess_flood']} logged"
    )
    yield (
        f"SendQ kicks:    {r['sendq_disconnects']} quit lines seen in the room, "
        f"{c['stall_resets']} stalled connections reset, "
        f"{srv['log_sendq_exceeded']} logged"
    )
    yield (
        f"server:         peak RSS {srv['peak_rss_mib']:.1f} MiB (VmHWM); RSS "
        f"{srv['rss_start_mib']:.1f} -> max {srv['rss_max_mib']:.1f} -> "
        f"{srv['rss_end_mib']:.1f} MiB; CPU {srv['cpu_s']:.1f} s; "
        f"{srv['stop']}"
    )
    yield f"client CPU:     {r['client_cpu_s']:.1f} s"
    yield f"tracebacks:     {r['tracebacks']} logged"
    for anomaly in r["anomalies"]:
        yield f"anomaly:        {anomaly}"
    for excerpt in r["traceback_excerpts"]:
        yield "--- traceback in the server log:\n" + excerpt
    yield f"result:         {'PASS' if r['passed'] else 'FAIL'}" + (
        f" ({'; '.join(r['failures'])})" if r["failures"] else ""
    )


# The run


async def run_load(
    config: Config, address: tuple[str, int], pid: int | None
) -> tuple[Run, dict[str, Any]]:
    run = Run(config, address)
    loop = run.loop
    usage = ServerUsage()
    sampler = loop.create_task(sample_usage(pid, usage)) if pid is not None else None
    try:
        await run.start_chatters()
    except TimeoutError:
        raise SetupError(
            f"the {config.chatters} chatters had not all joined after 20 s"
        ) from None
    except OSError as e:
        raise SetupError(f"cannot connect to {address[0]}:{address[1]}: {e}") from e

    started = loop.time()
    until = started + config.seconds
    talkers = [loop.create_task(run.talk(c, until)) for c in run.chatters]
    load = [loop.create_task(run.flood(i)) for i in range(config.flooders)]
    load += [loop.create_task(run.stall(i)) for i in range(config.stalled)]
    load += [
        loop.create_task(run.disconnect_loop(i)) for i in range(config.disconnectors)
    ]
    await asyncio.sleep(max(0.0, until - loop.time()))
    run.stopping = True
    for task in load:
        task.cancel()
    await asyncio.wait(talkers, timeout=max(config.interval) + 5)
    duration = loop.time() - started

    # Every chatter has said its end marker; wait for all of them to arrive.
    drain_started = loop.time()
    _, missing = await asyncio.wait(
        [c.drained for c in run.chatters], timeout=config.drain
    )
    drain_seconds = loop.time() - drain_started
    await asyncio.wait(load, timeout=15)
    stuck = sum(not t.done() for t in load)
    load_errors = [
        repr(t.exception())
        for t in load
        if t.done() and not t.cancelled() and t.exception() is not None
    ]
    run.closing_chatters = True
    for chatter in run.chatters:
        if chatter.transport is not None:
            chatter.transport.close()
    await asyncio.wait([c.closed for c in run.chatters], timeout=5)
    if sampler is not None:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        status = read_status(pid) if pid is not None else None
        if status is not None:
            usage.rss_end_kib = status[0]
            usage.hwm_kib = max(usage.hwm_kib, status[1])

    lost, expected, received = count_lost(run.chatters)
    latencies = sorted(run.latencies_us)
    anomalies = [f"load task failed: {e}" for e in load_errors]
    if stuck:
        anomalies.append(f"{stuck} load tasks did not stop")
    dropped = [c.nick for c in run.chatters if c.lost_connection_at is not None]
    if dropped:
        anomalies.append(f"chatters disconnected during the run: {dropped}")
    errors = [e for c in run.chatters for e in c.errors]
    if errors:
        anomalies.append(f"error lines to chatters: {errors[:5]!r}")
    malformed = sum(c.malformed for c in run.chatters)
    if malformed:
        anomalies.append(f"{malformed} malformed chatter lines received")
    counts = run.counts
    if counts.graceful_without_goodbye:
        anomalies.append(
            f"{counts.graceful_without_goodbye} half-closes or /quits got "
            "neither '*** Goodbye.' nor a flood kick, and the end of input, "
            "within 10 s"
        )
    if counts.connect_failures:
        anomalies.append(f"{counts.connect_failures} connection attempts failed")
    report: dict[str, Any] = {
        "address": f"{address[0]}:{address[1]}",
        "seed": config.seed,
        "duration_s": duration,
        "clients": {
            "chatters": config.chatters,
            "flooders": config.flooders,
            "stalled": config.stalled,
            "disconnectors": config.disconnectors,
            **asdict(counts),
        },
        "lines_sent": sum(c.sent for c in run.chatters),
        "deliveries_expected": expected,
        "deliveries_received": received,
        "lost": lost,
        "out_of_order": sum(c.out_of_order for c in run.chatters),
        "duplicates": sum(c.duplicates for c in run.chatters),
        "latency_ms": {
            "samples": len(latencies),
            "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99),
            "max": latencies[-1] / 1000 if latencies else 0.0,
        },
        "drain": {
            "complete": not missing,
            "seconds": drain_seconds,
            "missing_markers": sum(len(c.waiting_for_ends) for c in run.chatters),
        },
        "flood_disconnects": counts.flood_kicks_seen,
        "sendq_disconnects": run.observed.quits.get("SendQ exceeded", 0),
        "observed_quits": dict(run.observed.quits),
        "server": {
            "pid": pid,
            "peak_rss_mib": usage.hwm_kib / 1024,
            "rss_start_mib": usage.rss_start_kib / 1024,
            "rss_max_mib": usage.rss_max_kib / 1024,
            "rss_end_mib": usage.rss_end_kib / 1024,
            "cpu_s": usage.cpu_seconds,
            "rss_samples": usage.samples,
        },
        "anomalies": anomalies,
        "chatters_disconnected": len(dropped),
    }
    return run, report


async def run_all(config: Config, server: SpawnedServer | None) -> dict[str, Any]:
    if server is not None:
        address = server.start()
        pid = server.pid
    else:
        assert config.server is not None
        address = config.server
        pid = config.server_pid
    log_offset = 0
    if config.server_log is not None and config.server_log.exists():
        log_offset = config.server_log.stat().st_size

    _, report = await run_load(config, address, pid)

    srv = report["server"]
    failures: list[str] = []
    if server is not None:
        srv["kind"] = f"started twistd, pid {server.pid}"
        await server.stop()
        if server.died_early:
            srv["stop"] = f"DIED during the run (status {server.returncode})"
            failures.append("the server died during the run")
        elif server.killed:
            srv["stop"] = "did NOT stop within 15 s of SIGTERM; killed"
            failures.append("the server did not stop on SIGTERM")
        else:
            assert server.stop_seconds is not None
            srv["stop"] = (
                f"stopped by SIGTERM in {server.stop_seconds:.2f} s, "
                f"status {server.returncode}"
            )
        scan = scan_log(server.log_path.read_bytes())
        if not server.died_early and not server.killed:
            # twistd shuts down, then re-raises the signal it got.
            if server.returncode not in (0, -signal.SIGTERM) or not scan.shut_down:
                failures.append(
                    f"the server did not shut down cleanly (status {server.returncode})"
                )
    else:
        srv["kind"] = "running server" + (f", pid {pid}" if pid else "")
        srv["stop"] = "left running"
        if config.server_log is not None:
            with config.server_log.open("rb") as log:
                log.seek(log_offset)
                scan = scan_log(log.read())
        else:
            scan = LogScan()
            report["anomalies"].append("no --server-log: tracebacks not checked")
    srv["log_excess_flood"] = scan.excess_flood
    srv["log_sendq_exceeded"] = scan.sendq_exceeded
    srv["log_lines"] = scan.lines
    report["tracebacks"] = scan.tracebacks
    report["traceback_excerpts"] = scan.excerpts
    report["client_cpu_s"] = sum(cpu_times())

    if report["lost"]:
        failures.append(f"{report['lost']} lines lost")
    if report["out_of_order"]:
        failures.append(f"{report['out_of_order']} out of order")
    if report["duplicates"]:
        failures.append(f"{report['duplicates']} duplicates")
    if report["tracebacks"]:
        failures.append(f"{report['tracebacks']} tracebacks logged")
    if report["chatters_disconnected"]:
        failures.append(f"{report['chatters_disconnected']} chatters disconnected")
    report["failures"] = failures
    report["passed"] = not failures
    return report


def main(argv: list[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    server = SpawnedServer(config) if config.server is None else None
    # Everything is bounded on its own; this is the backstop.
    limit = config.seconds + config.drain + 120

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(run_all(config, server), limit)

    def watchdog(signum: int, frame: object) -> None:
        # The last resort if the event loop itself is stuck.
        print(
            f"stress: still running after {limit + 30:g} s; giving up", file=sys.stderr
        )
        if server is not None:
            server.kill_if_running()
            server.cleanup()
        os._exit(1)

    def terminate(signum: int, frame: object) -> None:
        # Unwind, so that the server is stopped and its directory removed.
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGALRM, watchdog)
    signal.signal(signal.SIGTERM, terminate)
    signal.alarm(int(limit) + 30)
    try:
        report = asyncio.run(bounded())
    except SetupError as e:
        print(f"stress: {e}", file=sys.stderr)
        return 2
    except TimeoutError:
        print(f"stress: the run did not finish within {limit:g} s", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.kill_if_running()
            server.cleanup()
    if config.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print("\n".join(iter_rows(report)))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
