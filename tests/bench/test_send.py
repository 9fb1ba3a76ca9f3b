"""
Tests for L{chatservice.bench.send}: how many lines the senders say, and
when, at a paced rate (C{--rate}, or a point's C{@RATE}).

The pace is a function of the monotonic time the worker's loop passes in,
so these tests drive it with a L{task.Clock} that only moves when told:
nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import socket

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from chatservice.bench import irc, payload
from chatservice.bench.connection import Client
from chatservice.bench.messages import WorkerSpec
from chatservice.bench.send import MAX_BATCH, Sender
from tests.bench.specs import worker_spec


def spec(rate_per_sender: float | None, senders: int = 1, **kw: object) -> WorkerSpec:
    return worker_spec(
        **{
            "receivers": 0,
            "sender_ids": tuple(range(senders)),
            "senders": senders,
            "window": 100_000,
            "rate_per_sender": rate_per_sender,
            **kw,
        }
    )


class _Window:
    """The part of L{chatservice.bench.shared.Window} a sender uses."""

    def __init__(self) -> None:
        self.lowest = 0
        self.blocked = 0
        self.sent_lines: dict[int, int] = {}

    def fewest(self) -> int:
        return self.lowest

    def block(self) -> None:
        self.blocked += 1

    def sent(self, sid: int, lines: int) -> None:
        self.sent_lines[sid] = lines


class _Epoll:
    def modify(self, fd: int, events: int) -> None:
        pass


class PacedTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.window = _Window()
        self.received: dict[int, socket.socket] = {}

    def senders(self, count: int) -> list[Client]:
        clients = []
        for sid in range(count):
            ours, theirs = socket.socketpair()
            ours.setblocking(False)
            theirs.setblocking(False)
            self.addCleanup(ours.close)
            self.addCleanup(theirs.close)
            self.received[sid] = theirs
            clients.append(Client(ours, sid, count))
        return clients

    def said(self, sid: int) -> list[bytes]:
        """The lines sender C{sid} has written so far."""
        data = b""
        while True:
            try:
                chunk = self.received[sid].recv(1 << 20)
            except BlockingIOError:
                break
            data += chunk
        return data.splitlines()

    def sender(self, the_spec: WorkerSpec) -> Sender:
        return Sender(
            the_spec,
            self.window,  # type: ignore[arg-type]
            _Epoll(),  # type: ignore[arg-type]
            lambda client: None,
        )

    def now(self) -> int:
        return int(self.clock.seconds() * 1e9)

    def test_one_line_a_millisecond(self) -> None:
        """
        At 1,000 lines a second, one sender says nothing at the start, then
        as many lines as whole milliseconds have passed: never ahead of the
        pace, and each line as soon as it is due.
        """
        sender = self.sender(spec(1000.0))
        [client] = clients = self.senders(1)
        t0 = self.now()
        sender.send(clients, self.now(), t0)
        self.assertEqual(client.sent, 0)
        totals = []
        for step in (0.0005, 0.0005, 0.001, 0.0004, 0.0021, 0.5):
            self.clock.advance(step)
            sender.send(clients, self.now(), t0)
            totals.append(client.sent)
        self.assertEqual(totals, [0, 1, 2, 2, 4, 504])
        lines = self.said(0)
        self.assertEqual(len(lines), 504)
        # In order, and each stamped with its sequence number.
        fills = payload.fills_for(64)
        seqs = [payload.read(line + b"\n", 63, fills) for line in lines]
        self.assertEqual([found[3] for found in seqs if found], list(range(1, 505)))
        self.assertEqual(self.window.sent_lines, {0: 504})

    def test_rate_shared_by_senders(self) -> None:
        """
        The rate is for all senders together: each of four says a quarter,
        and a late wake-up makes up the lines that fell due meanwhile, at
        most L{MAX_BATCH} at a time.
        """
        sender = self.sender(spec(250.0, senders=4))
        clients = self.senders(4)
        t0 = self.now()
        self.clock.advance(0.1)
        sender.send(clients, self.now(), t0)
        self.assertEqual([c.sent for c in clients], [25] * 4)
        self.clock.advance(5.0)
        sender.send(clients, self.now(), t0)
        self.assertEqual([c.sent for c in clients], [25 + MAX_BATCH] * 4)
        calls = 1
        while clients[0].sent < 1275:
            sender.send(clients, self.now(), t0)
            calls += 1
        self.assertEqual([c.sent for c in clients], [1275] * 4)
        self.assertEqual(calls, -(-1250 // MAX_BATCH))

    def test_window_still_bounds(self) -> None:
        """
        A paced sender still stays within the window of lines not yet
        delivered to every receiver, and asks to be woken when they move.
        """
        sender = self.sender(spec(1000.0, window=3))
        [client] = clients = self.senders(1)
        t0 = self.now()
        self.clock.advance(0.01)
        sender.send(clients, self.now(), t0)
        self.assertEqual(client.sent, 3)
        self.assertEqual(self.window.blocked, 0)
        self.clock.advance(0.01)
        sender.send(clients, self.now(), t0)
        self.assertEqual(client.sent, 3)
        self.assertEqual(self.window.blocked, 1)
        self.window.lowest = 5
        sender.send(clients, self.now(), t0)
        self.assertEqual(client.sent, 8)

    def test_irc_lines(self) -> None:
        """With C{--protocol irc}, each paced line is a PRIVMSG to #bench."""
        sender = self.sender(spec(1000.0, irc=True))
        clients = self.senders(1)
        t0 = self.now()
        self.clock.advance(0.002)
        sender.send(clients, self.now(), t0)
        lines = self.said(0)
        self.assertEqual(len(lines), 2)
        for line in lines:
            self.assertTrue(line.startswith(irc.PRIVMSG), line)
