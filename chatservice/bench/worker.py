"""
One generator process: many non-blocking sockets on one epoll, driven
through a run's phases (connect, calibrate, measure, drain) by what the
coordinator says on its control pipe (see L{chatservice.bench.messages}).

The worker owns the loop, the connections and the phases; what it reads is
handled by a L{Reader}, what it says by a L{Sender}, the window of lines in
flight by a L{Window}, and the counting at the end by
L{chatservice.bench.tally}.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from chatservice.bench import irc, ws
from chatservice.bench.connect import connections, slow_readers
from chatservice.bench.connection import (
    CALIBRATING,
    COUNTING,
    DISCARDING,
    REGISTERING,
    Client,
)
from chatservice.bench.errors import BenchError
from chatservice.bench.messages import WorkerResult, WorkerSpec
from chatservice.bench.proc import cpu_times, raise_open_files_limit
from chatservice.bench.receive import Reader
from chatservice.bench.send import Sender
from chatservice.bench.shared import Window
from chatservice.bench.tally import expect, tally


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
        self.wake = wake
        self.epoll = select.epoll()
        self.clients: list[Client] = []
        self.receivers: list[Client] = []
        self.senders: list[Client] = []
        self.by_fd: dict[int, Client] = {}
        # Connected and never read; kept open for the whole run.
        self.slow: list[socket.socket] = []
        self.window = Window(
            index, spec.senders, spec.workers, shared, wakers, self.receivers
        )
        self.sender = Sender(spec, self.window, self.epoll, self.close)
        self.reader = Reader(spec, self.window, self.close, self.sender.queue)
        self.result = WorkerResult()
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
        self.reads0 = 0
        self.cpu0 = (0.0, 0.0)
        self.done = False

    # Set-up

    def run(self) -> None:
        raise_open_files_limit()
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
        self.slow = slow_readers(spec)
        for sid, node, sock in connections(spec, self.window, self.poll):
            client = Client(sock, sid, spec.senders, node)
            client.mode = DISCARDING if spec.idle else CALIBRATING
            (self.senders if sid >= 0 else self.receivers).append(client)
            self.clients.append(client)
            self.by_fd[client.fd] = client
            self.epoll.register(client.fd, select.EPOLLIN)
            if spec.irc:
                client.mode = REGISTERING
                client.nick = irc.nick(self.index, len(self.clients))
                self.sender.queue(client, irc.registration(client.nick))
            elif spec.ws:
                client.mode = REGISTERING
                client.nick = b"c%d" % len(self.clients)
                upgrade, client.accept = ws.handshake(*spec.address(node))
                self.sender.queue(client, upgrade)
            self.window.opened()
            self.poll(0)
        self.result.clients = len(self.clients)
        if spec.irc:
            self.await_joined(irc.CHANNEL.decode())
        elif spec.ws:
            self.await_joined(ws.ROOM)

    def await_joined(self, room: str) -> None:
        """
        With C{--protocol irc} or C{ws}: wait until every connection is in
        the C{room}.
        """
        while self.reader.joined < len(self.clients):
            closed = [c.nick.decode() for c in self.clients if c.closed]
            if closed:
                raise BenchError(
                    f"the server closed {len(closed)} connections before they "
                    f"were in {room} ({', '.join(closed[:3])}, ...)"
                )
            if time.monotonic_ns() > self.spec.deadline_ns:
                raise BenchError(
                    f"deadline passed with {self.reader.joined} of "
                    f"{len(self.clients)} connections in {room}"
                )
            self.poll(0.05)

    # The loop

    def timeout(self, now: int) -> float:
        if self.sending:
            if self.spec.rate_per_sender is not None:
                return 0.001
            if self.sender.waiting():
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
        read = self.reader.read
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
                self.sender.flush(client)
            if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                read(client)

    def on_control(self) -> None:
        while self.control.poll():
            try:
                message = self.control.recv()
            except EOFError:
                self.done = True
                return
            kind = message[0]
            if kind == "cal":
                self.sender.calibrate(self.senders, message[1])
            elif kind == "start":
                self.start(message[1], message[2])
            elif kind == "finals":
                self.finals = message[1]
                self.drain_deadline = message[2]
                expect(self.clients, message[1], self.spec.size - 1, self.spec.ws)
            elif kind == "status":
                reader = self.reader
                self.control.send(
                    (
                        "status",
                        sum(not c.closed for c in self.clients),
                        reader.heard,
                        reader.rx_bytes,
                        reader.last_rx,
                    )
                )
            elif kind == "exit":
                self.done = True

    def start(self, t0: int, t_end: int) -> None:
        self.reader.counting(self.clients)
        for client in self.clients:
            if client.tail:
                self.result.noise += 1
            client.mode = COUNTING
        self.window.open()
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
            self.window.counted(sum(c.lines for c in self.clients))
        if not self.sending and not self.stopped and now >= self.t0:
            self.sending = True
            self.cpu0 = cpu_times()
            self.reads0 = self.reader.reads
        if self.sending:
            if now >= self.t_end:
                self.stop()
            else:
                self.sender.send(self.senders, now, self.t0)
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

    def stop(self) -> None:
        """The measured window ends: take the figures of the window."""
        self.sending = False
        self.stopped = True
        result = self.result
        user, system = cpu_times()
        result.cpu_window = user + system - sum(self.cpu0)
        result.cpu_window_system = system - self.cpu0[1]
        result.window_reads = self.reader.reads - self.reads0
        result.window_lines = sum(c.lines for c in self.clients)
        result.window_receiver_lines = sum(c.lines for c in self.receivers)
        if self.spec.targets:
            by_node = [0] * len(self.spec.targets)
            for client in self.clients:
                by_node[client.node] += client.lines
            result.window_lines_by_node = by_node
        self.window.counted(result.window_lines)

    def close(self, client: Client) -> None:
        if client.closed:
            return
        client.closed = True
        client.pending = b""
        if self.counting and client.sid < 0 and client.lines == self.window.low:
            self.window.passed()
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.epoll.unregister(client.fd)
        del self.by_fd[client.fd]
        client.sock.close()

    # The end

    def report(self) -> None:
        result = self.result
        tally(self.clients, result, self.spec.checksum, self.spec.ws)
        result.histogram = self.reader.histogram
        result.cross_histogram = self.reader.cross_histogram
        result.max_latency_us = self.reader.max_latency_us
        self.control.send(("result", result))
        self.finals = None
        self.counting = False


def worker_main(
    index: int,
    spec: WorkerSpec,
    control: Connection,
    shared: Any,
    wake: Connection,
    wakers: list[Connection],
) -> None:
    """A worker process's life: run, and say why if it fails."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        Worker(index, spec, control, shared, wake, wakers).run()
    except BaseException as e:
        with contextlib.suppress(Exception):
            control.send(("error", f"worker {index}: {e}\n{traceback.format_exc()}"))
