"""
Tests for the limits that keep one client from costing others anything:
flood control, the send queue of slow consumers, connection caps, the idle
timeout and TCP options on accepted sockets, and the log events that every
refusal and disconnect leaves.

Rules where only time matters run in memory on a L{Clock}; rules where the
kernel matters (socket buffers, keepalive, real connection churn) run over
loopback TCP on the real reactor.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory
from twisted.logger import LogEvent, formatEvent
from twisted.python.failure import Failure
from twisted.trial import unittest

from chatservice.frontends.admission import Refusal
from chatservice.frontends.limits import Limits, address_key
from chatservice.frontends.line.protocol import LineFactory, LineProtocol
from tests.support.helpers import (
    TIMEOUT,
    LineClient,
    LoopbackChat,
    TrackedLineFactory,
    capture_events,
    deferred_test,
)
from tests.support.memory import Connection, Harness, discard

# Flood limits with round binary numbers, so that clock times are exact: one
# token every quarter of a second, three at once, five held at most.
FLOOD = Limits(flood_rate=4, flood_burst=3, flood_queue=5)
TICK = 0.25

WELCOME = re.compile(r"^\*\*\* Welcome to chatservice, (guest\d+)! ")


# Log events


def chat_events(events: list[LogEvent]) -> list[LogEvent]:
    return [e for e in events if e.get("log_namespace", "").startswith("chatservice")]


def with_reason(events: list[LogEvent], reason: str) -> list[LogEvent]:
    return [e for e in chat_events(events) if e.get("reason") == reason]


def logged_text(event: LogEvent) -> str:
    """
    Everything an observer could write out for C{event}: its formatted text
    and the value of every field.
    """
    fields = [repr(v) for k, v in event.items() if not k.startswith("log_")]
    return "\n".join([formatEvent(event), *fields])


# In memory


class FloodTests(unittest.SynchronousTestCase):
    limits = FLOOD

    def setUp(self) -> None:
        self.events = capture_events(self)
        self.harness = Harness(self.limits)
        self.a, self.b = self.harness.clients(2)

    def said(self, *texts: str) -> list[str]:
        return [f"[lobby] <{self.a.nick}> {text}" for text in texts]

    def test_burstPassesAtOnce(self) -> None:
        """
        Up to C{flood_burst} lines are handled at once, with nothing held.
        """
        self.a.lines("1", "2", "3")
        self.assertEqual(self.b.take(), self.said("1", "2", "3"))
        self.assertEqual(self.harness.clock.getDelayedCalls(), [])

    def test_nextLineWaitsForToken(self) -> None:
        """
        The line after the burst is handled exactly when a token is back:
        1 / flood_rate seconds later, not before.
        """
        self.a.lines("1", "2", "3", "4")
        self.assertEqual(self.b.take(), self.said("1", "2", "3"))
        self.harness.advance(TICK / 2)
        self.assertEqual(self.b.take(), [])
        self.harness.advance(TICK / 2)
        self.assertEqual(self.b.take(), self.said("4"))
        self.assertTrue(self.a.connected)
        self.assertEqual(self.a.take(), [])

    def test_heldLinesPacedInOrder(self) -> None:
        """
        Held lines are handled one per token, in the order sent, and lines
        that arrive while others are held wait behind them.
        """
        self.a.lines("1", "2", "3", "4", "5", "6", "7", "8")
        self.assertEqual(self.b.take(), self.said("1", "2", "3"))
        self.harness.advance(TICK)
        self.assertEqual(self.b.take(), self.said("4"))
        self.harness.advance(TICK / 2)
        self.a.lines("9")
        self.assertEqual(self.b.take(), [])
        self.harness.advance(TICK / 2)
        for expected in ("5", "6", "7", "8", "9"):
            self.assertEqual(self.b.take(), self.said(expected))
            self.harness.advance(TICK)
        self.assertEqual(self.b.take(), [])
        self.assertEqual(self.harness.clock.getDelayedCalls(), [])
        self.assertTrue(self.a.connected)

    def test_newLinesNeverOvertakeHeldOnes(self) -> None:
        """
        Input that arrives when tokens are back but before the held lines
        have been handled (the reactor was busy) still goes after them.
        """
        self.a.lines("1", "2", "3", "4", "5")
        self.assertEqual(self.b.take(), self.said("1", "2", "3"))
        # Time moves on without the reactor running the timer yet...
        self.harness.clock.rightNow += 3 * TICK
        # ...and new input is read first.
        self.a.lines("6")
        self.assertEqual(self.b.take(), self.said("4", "5", "6"))

    def test_commandsArePacedToo(self) -> None:
        """
        Commands count as lines: a held C{/nick} takes effect when its turn
        comes, after the lines sent before it.
        """
        old = self.a.nick
        self.a.lines("1", "2", "3", "/nick zed", "after")
        self.assertEqual(self.b.take(), [f"[lobby] <{old}> {n}" for n in "123"])
        self.harness.advance(TICK)
        self.assertEqual(self.b.take(), [f"[lobby] --- {old} is now known as zed"])
        self.harness.advance(TICK)
        self.assertEqual(self.b.take(), ["[lobby] <zed> after"])

    def test_burstRefillsToBurstOnly(self) -> None:
        """
        A long silence earns back the burst and no more.
        """
        self.harness.advance(100)
        self.a.lines("1", "2", "3", "4", "5")
        self.assertEqual(self.b.take(), self.said("1", "2", "3"))
        self.harness.advance(TICK)
        self.assertEqual(self.b.take(), self.said("4"))

    def test_othersNotDelayed(self) -> None:
        """
        While a flooder's lines are held, other clients' lines are handled at
        once, each connection with its own full burst.
        """
        (c,) = self.harness.clients(1)
        self.b.take()
        self.a.lines("1", "2", "3", "4", "5", "6", "7", "8")
        self.b.lines("x", "y", "z")
        self.assertEqual(
            c.take(),
            self.said("1", "2", "3")
            + [f"[lobby] <{self.b.nick}> {t}" for t in ("x", "y", "z")],
        )

    def test_queueBoundDisconnects(self) -> None:
        """
        C{flood_queue} held lines are allowed; one more and the flooder is
        told why and disconnected, the room sees it quit, the held lines are
        dropped, and the disconnect is logged with the peer and a reason.
        """
        a, b = self.a, self.b
        a.lines("1", "2", "3", "4", "5", "6", "7", "8")
        self.assertTrue(a.connected)
        self.assertFalse(a.transport.disconnecting)
        a.lines("9")
        self.assertEqual(
            a.take(),
            [
                "!!! Excess flood: more than 5 lines waiting at 4 lines a second; "
                "disconnecting."
            ],
        )
        self.assertTrue(a.transport.disconnecting)
        self.assertEqual(
            b.take(),
            [*self.said("1", "2", "3"), f"[lobby] <-- {a.nick} quit (excess flood)"],
        )
        self.harness.advance(1)
        self.assertEqual(b.take(), [])
        [event] = with_reason(self.events, "excess flood")
        self.assertEqual(event["peer"], a.transport.getPeer())
        a.lost()
        self.harness.advance(10)
        self.assertEqual(b.take(), [])
        self.assertEqual(self.harness.clock.getDelayedCalls(), [])

    def test_queueBoundInOneChunk(self) -> None:
        """
        The same, when the whole flood comes in one chunk: the burst is
        handled and the flooder disconnected at once.
        """
        a, b = self.a, self.b
        a.lines(*map(str, range(1, 10)))
        self.assertTrue(a.transport.disconnecting)
        self.assertRegex(a.take()[-1], r"^!!! Excess flood: ")
        self.assertEqual(
            b.take(),
            [*self.said("1", "2", "3"), f"[lobby] <-- {a.nick} quit (excess flood)"],
        )

    def test_halfCloseWithHeldLines(self) -> None:
        """
        At end of input, held lines (and an unterminated last line) are still
        handled at the allowed rate, and only then does the client quit.
        """
        a, b = self.a, self.b
        a.send(b"1\n2\n3\n4\n5")
        a.half_close()
        self.assertEqual(b.take(), self.said("1", "2", "3"))
        self.assertFalse(a.transport.disconnecting)
        self.harness.advance(TICK)
        self.assertEqual(b.take(), self.said("4"))
        self.assertFalse(a.transport.disconnecting)
        self.harness.advance(TICK)
        self.assertEqual(
            b.take(),
            [*self.said("5"), f"[lobby] <-- {a.nick} quit (connection closed)"],
        )
        self.assertEqual(a.take(), ["*** Goodbye."])
        self.assertTrue(a.transport.disconnecting)

    def test_connectionLostWithHeldLines(self) -> None:
        """
        A connection lost with lines held drops them and leaves no timer.
        """
        a, b = self.a, self.b
        a.lines("1", "2", "3", "4", "5")
        b.take()
        a.lost()
        self.assertEqual(b.take(), [f"[lobby] <-- {a.nick} quit (connection lost)"])
        self.harness.advance(10)
        self.assertEqual(b.take(), [])
        self.assertEqual(self.harness.clock.getDelayedCalls(), [])


class DefaultFloodTests(unittest.SynchronousTestCase):
    """
    Flood control with the default limits and clock times that are not
    round binary numbers.
    """

    def test_defaults(self) -> None:
        limits = Limits()
        self.assertEqual(
            (limits.flood_rate, limits.flood_burst, limits.flood_queue),
            (5.0, 20, 100),
        )

    def test_tokenDueAtAnyTime(self) -> None:
        """
        Whatever the time the flood starts at, each held line is handled
        when the server's own timer for it fires, 1 / flood_rate seconds
        after the one before.
        """
        for start in (0.0, 0.1, 1.1, 7.3):
            harness = Harness(Limits())
            harness.advance(start)
            a, b = harness.clients(2)
            a.lines(*(f"line {n}" for n in range(1, 24)))
            self.assertEqual(len(b.take()), 20)
            for n in (21, 22, 23):
                due = harness.next_call()
                self.assertAlmostEqual(due, start + (n - 20) * 0.2, delta=1e-9)
                harness.advance_to(due)
                self.assertEqual(
                    b.take(),
                    [f"[lobby] <{a.nick}> line {n}"],
                    f"line {n} not handled at {due!r} (flood started at {start})",
                )

    def test_rateZeroNeverHolds(self) -> None:
        """
        With C{flood_rate} 0, any number of lines is handled at once and no
        timer is ever set.
        """
        harness = Harness(Limits(flood_rate=0, flood_queue=1))
        a, b = harness.clients(2)
        for chunk in range(3):
            texts = [f"{chunk}-{n}" for n in range(1000)]
            a.lines(*texts)
            self.assertEqual(b.take(), [f"[lobby] <{a.nick}> {t}" for t in texts])
            self.assertEqual(harness.clock.getDelayedCalls(), [])
        self.assertTrue(a.connected)


class FloodExemptTests(unittest.SynchronousTestCase):
    """
    C{flood_exempt}: networks whose connections flood control leaves alone.
    """

    def setUp(self) -> None:
        self.harness = Harness(
            Limits(
                flood_rate=1,
                flood_burst=2,
                flood_queue=5,
                flood_exempt=(
                    ipaddress.ip_network("10.9.0.0/16"),
                    ipaddress.ip_network("2001:db8::/32"),
                ),
            )
        )

    def test_exempt_network_is_never_held(self) -> None:
        for host in ["10.9.3.4", "2001:db8::7", "::ffff:10.9.0.1"]:
            with self.subTest(host=host):
                a = self.harness.connect(self.harness.address(host))
                b = self.harness.connect()
                discard(a, b)
                texts = [f"{host} {n}" for n in range(50)]
                a.lines(*texts)
                self.assertEqual(b.take(), [f"[lobby] <{a.nick}> {t}" for t in texts])
                self.assertTrue(a.connected)

    def test_others_still_limited(self) -> None:
        a = self.harness.connect(self.harness.address("10.8.0.1"))
        b = self.harness.connect()
        discard(a, b)
        a.lines(*map(str, range(10)))
        self.assertFalse(a.connected)
        self.assertTrue(a.take()[-1].startswith("!!! Excess flood"))

    def test_unix_sockets_are_limited(self) -> None:
        """
        An address without an IP is never in an exempt network.
        """
        limits = self.harness.factory.limits
        self.assertTrue(limits.flood_limited(UNIXAddress(b"/tmp/chat.sock")))
        self.assertFalse(Limits(flood_rate=0).flood_limited(UNIXAddress(None)))


class IdleTimeoutTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.events = capture_events(self)
        self.harness = Harness(Limits(idle_timeout=10, flood_rate=0))

    def test_idleTimeout(self) -> None:
        """
        A connection that sends nothing for C{idle_timeout} seconds is told
        so and closed; input resets the timer, output does not.
        """
        a, b = self.harness.clients(2)
        self.harness.advance(5)
        a.lines("still here")
        b.take()
        self.harness.advance(4.5)
        self.assertTrue(b.connected)
        self.assertEqual(b.take(), [])
        self.harness.advance(0.5)
        self.assertEqual(b.take(), ["!!! No input for 10 seconds; disconnecting."])
        self.assertTrue(b.transport.disconnecting)
        self.assertEqual(a.take(), [f"[lobby] <-- {b.nick} quit (idle timeout)"])
        [event] = with_reason(self.events, "idle timeout")
        self.assertEqual(event["peer"], b.transport.getPeer())
        b.lost()
        # a has been sent output since its last input; that is not input.
        self.harness.advance(4.5)
        self.assertTrue(a.connected)
        self.harness.advance(0.5)
        self.assertFalse(a.connected)
        self.assertEqual(a.take(), ["!!! No input for 10 seconds; disconnecting."])

    def test_partialLineIsInput(self) -> None:
        """
        Any bytes count as input, not only whole lines.
        """
        (a,) = self.harness.clients(1)
        self.harness.advance(9.5)
        a.send(b"half a li")
        self.harness.advance(9.5)
        self.assertTrue(a.connected)
        a.send(b"ne\n")
        self.harness.advance(9.5)
        self.assertTrue(a.connected)
        self.harness.advance(0.5)
        self.assertFalse(a.connected)

    def test_offByDefault(self) -> None:
        """
        With the default C{idle_timeout} of 0, silent connections stay.
        """
        self.assertEqual(Limits().idle_timeout, 0)
        harness = Harness(Limits())
        (a,) = harness.clients(1)
        self.assertEqual(harness.clock.getDelayedCalls(), [])
        harness.advance(10**6)
        self.assertTrue(a.connected)
        self.assertEqual(a.take(), [])

    def test_noTimerAfterConnectionLost(self) -> None:
        (a,) = self.harness.clients(1)
        a.lost()
        self.assertEqual(self.harness.clock.getDelayedCalls(), [])

    def test_heldLinesAreNotSilence(self) -> None:
        """
        A client whose lines the server is still holding back for flood
        control is not idle: the held lines are all handled, and the end of
        input that followed them is a normal quit.
        """
        harness = Harness(
            Limits(idle_timeout=2, flood_rate=4, flood_burst=3, flood_queue=20)
        )
        a, b = harness.clients(2)
        # Three lines now, then one every quarter second for three seconds.
        a.lines(*map(str, range(1, 16)))
        a.half_close()
        for _ in range(12):
            harness.advance(TICK)
            # b keeps talking (blank lines relay nothing): only a is quiet.
            b.send(b"\n")
        self.assertTrue(b.connected)
        self.assertEqual(
            b.take(),
            [f"[lobby] <{a.nick}> {n}" for n in range(1, 16)]
            + [f"[lobby] <-- {a.nick} quit (connection closed)"],
        )
        self.assertEqual(a.take(), ["*** Goodbye."])

    def test_idleAfterHeldLinesDrain(self) -> None:
        """
        Once the held lines are handled, silence counts again: the timeout
        that was put off while lines were held still comes.
        """
        harness = Harness(
            Limits(idle_timeout=2, flood_rate=1, flood_burst=1, flood_queue=20)
        )
        a, b = harness.clients(2)
        a.lines("1", "2", "3", "4")
        harness.turn()
        for _ in range(3 * 4):
            harness.advance(TICK)
            # b keeps talking (blank lines relay nothing): only a is quiet.
            b.send(b"\n")
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> {n}" for n in range(1, 5)])
        self.assertTrue(a.connected)
        for _ in range(2 * 4 + 1):
            harness.advance(TICK)
            b.send(b"\n")
        self.assertFalse(a.connected)
        self.assertTrue(b.connected)
        self.assertEqual(a.take(), ["!!! No input for 2 seconds; disconnecting."])


class SendQTests(unittest.SynchronousTestCase):
    """
    The L{Backlog} as the transport drives it: paused when the socket's
    buffer is full, resumed when it drains.
    """

    def setUp(self) -> None:
        self.events = capture_events(self)

    def start(self, sendq: int) -> tuple[Harness, list[Connection]]:
        harness = Harness(Limits(flood_rate=0, sendq=sendq))
        return harness, harness.clients(3)

    def test_registeredAsStreamingProducer(self) -> None:
        _, (a, _, _) = self.start(1000)
        self.assertIsNotNone(a.transport.producer)
        self.assertTrue(a.transport.streaming)

    def test_slowButUnderSendq(self) -> None:
        """
        While the transport is paused, everything for the client is held, in
        order and not written; the client stays connected, and when the
        transport resumes it is sent all of it in order, then new output as
        it comes.
        """
        _, (a, b, c) = self.start(1024 * 1024)
        producer = b.transport.producer
        producer.pauseProducing()
        expected = []
        for n in range(50):
            text = f"line {n} " + "x" * 100
            a.lines(text)
            expected.append(f"[lobby] <{a.nick}> {text}")
        a.lines(f"/msg {b.nick} psst")
        expected.append(f"*{a.nick}* psst")
        c.lines("from c")
        expected.append(f"[lobby] <{c.nick}> from c")
        self.assertEqual(b.transport.value(), b"")
        held = sum(len(line.encode()) + 2 for line in expected)
        self.assertEqual(b.proto._backlog.size, held)
        self.assertTrue(b.connected)
        self.assertFalse(b.transport.disconnecting)
        producer.resumeProducing()
        self.assertEqual(b.take(), expected)
        self.assertEqual(b.proto._backlog.size, 0)
        a.lines("later")
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> later"])
        self.assertEqual(with_reason(self.events, "sendq exceeded"), [])

    def test_sendqExceeded(self) -> None:
        """
        Exactly C{sendq} bytes may be held; past that the client is aborted,
        what was held is freed, the room sees it quit, and the disconnect is
        logged with the peer and a reason.
        """
        text = "y" * 60
        line = f"[lobby] <guest1> {text}\r\n".encode()
        harness, (a, b, c) = self.start(5 * len(line))
        self.assertEqual(a.nick, "guest1")
        b.transport.producer.pauseProducing()
        for _ in range(5):
            a.lines(text)
        self.assertEqual(b.proto._backlog.size, 5 * len(line))
        self.assertTrue(b.connected)
        self.assertFalse(b.transport.disconnecting)
        a.lines(text)
        self.assertFalse(b.connected)
        self.assertTrue(b.transport.disconnected, "not aborted")
        self.assertEqual(b.proto._backlog.size, 0)
        self.assertEqual(b.proto._backlog.held, [])
        self.assertEqual(
            c.take(),
            [f"[lobby] <guest1> {text}"] * 6
            + [f"[lobby] <-- {b.nick} quit (SendQ exceeded)"],
        )
        a.lines("more")
        self.assertEqual(b.proto._backlog.size, 0)
        [event] = with_reason(self.events, "sendq exceeded")
        self.assertEqual(event["peer"], b.transport.getPeer())
        b.lost()
        self.assertEqual(harness.admission.connections, 2)

    def test_quitWhilePaused(self) -> None:
        """
        A client that quits while its output is held is still sent it all,
        the goodbye last: closing hands the held output to the transport
        (which sends it before it closes) and stops producing, as TLS needs
        before it can close.
        """
        _, (a, b, _) = self.start(1024 * 1024)
        b.transport.producer.pauseProducing()
        a.lines("before")
        self.assertEqual(b.transport.value(), b"")
        b.lines("/quit")
        self.assertTrue(b.transport.disconnecting)
        self.assertIsNone(b.transport.producer)
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> before", "*** Goodbye."])


class ConnectionLimitTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.events = capture_events(self)

    def assertRefused(
        self, harness: Harness, address: IAddress, line: str, reason: str
    ) -> None:
        before = len(with_reason(self.events, reason))
        proto, transport = harness.build(address)
        self.assertIsInstance(proto, Refusal)
        self.assertNotIsInstance(proto, LineProtocol)
        self.assertEqual(transport.value(), line.encode() + b"\r\n")
        self.assertTrue(transport.disconnecting)
        events = with_reason(self.events, reason)
        self.assertEqual(len(events), before + 1)
        self.assertEqual(events[-1]["peer"], address)
        proto.connectionLost(Failure(ConnectionDone()))

    def full(self, harness: Harness, address: IAddress | None = None) -> None:
        self.assertRefused(
            harness,
            address or harness.address("10.9.9.9"),
            "!!! The server is full (2 connections); try again later.",
            "max clients",
        )

    def crowded(self, harness: Harness, host: str, limit: int = 2) -> None:
        self.assertRefused(
            harness,
            harness.address(host),
            f"!!! Too many connections from your address (the limit is {limit}); "
            "try again later.",
            "max per ip",
        )

    def test_maxClients(self) -> None:
        """
        Past C{max_clients}, a connection gets one line and is closed;
        refusals take no slot, and a slot freed by connectionLost is usable
        at once.
        """
        harness = Harness(Limits(max_clients=2))
        a = harness.connect(harness.address("10.0.0.1"))
        harness.connect(harness.address("10.0.0.2"))
        for _ in range(3):
            self.full(harness)
        self.assertEqual(len(harness.factory.chat.members), 2)
        a.lost()
        harness.connect(harness.address("10.0.0.3"))
        self.full(harness)

    def test_maxPerIp(self) -> None:
        harness = Harness(Limits(max_per_ip=2))
        a = harness.connect(harness.address("10.0.0.1"))
        harness.connect(harness.address("10.0.0.1"))
        self.crowded(harness, "10.0.0.1")
        harness.connect(harness.address("10.0.0.2"))
        a.lost()
        harness.connect(harness.address("10.0.0.1"))
        self.crowded(harness, "10.0.0.1")

    def test_ipv6SlashSixtyFour(self) -> None:
        """
        IPv6 addresses in one /64 count as one address; another /64 is
        another address.
        """
        harness = Harness(Limits(max_per_ip=2))
        harness.connect(harness.address("2001:db8:1:2::1"))
        harness.connect(harness.address("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        self.crowded(harness, "2001:db8:1:2:abcd::99")
        harness.connect(harness.address("2001:db8:1:3::1"))
        harness.connect(harness.address("2001:db8:1:3::2"))
        self.crowded(harness, "2001:db8:1:3::3")

    def test_ipv4MappedCountsAsIpv4(self) -> None:
        harness = Harness(Limits(max_per_ip=2))
        harness.connect(harness.address("10.0.0.1"))
        harness.connect(harness.address("::ffff:10.0.0.1"))
        self.crowded(harness, "10.0.0.1")

    def test_unixNotCountedPerIp(self) -> None:
        """
        UNIX socket connections have no address to count per IP, but count
        towards C{max_clients}.
        """
        harness = Harness(Limits(max_per_ip=1, max_clients=2))
        harness.connect(UNIXAddress(b"/tmp/chat.sock"))
        harness.connect(UNIXAddress(b"/tmp/chat.sock"))
        self.full(harness, UNIXAddress(b"/tmp/chat.sock"))

    def test_zeroMeansNoLimit(self) -> None:
        harness = Harness(Limits(max_clients=0, max_per_ip=0))
        for _ in range(40):
            harness.connect(harness.address("10.0.0.1"))
        self.assertEqual(harness.admission.connections, 40)

    def test_refusedConnectionCostsNothing(self) -> None:
        """
        A refused connection's loss releases nothing it never took.
        """
        harness = Harness(Limits(max_clients=2, max_per_ip=1))
        harness.connect(harness.address("10.0.0.1"))
        self.crowded(harness, "10.0.0.1", limit=1)
        self.assertEqual(harness.admission.connections, 1)
        self.assertEqual(dict(harness.admission.per_address), {"10.0.0.1": 1})
        harness.connect(harness.address("10.0.0.2"))
        self.full(harness)
        self.assertEqual(harness.admission.connections, 2)


class AddressKeyTests(unittest.SynchronousTestCase):
    def test_keys(self) -> None:
        cases = [
            (IPv4Address("TCP", "192.0.2.7", 1), "192.0.2.7"),
            (IPv6Address("TCP", "2001:db8::1", 1), "2001:db8::/64"),
            (IPv6Address("TCP", "2001:db8:0:0:ffff::1", 1), "2001:db8::/64"),
            (IPv6Address("TCP", "2001:db8:0:1::1", 1), "2001:db8:0:1::/64"),
            (IPv6Address("TCP", "::ffff:192.0.2.7", 1), "192.0.2.7"),
            (IPv6Address("TCP", "fe80::1%eth0", 1), "fe80::/64"),
            (UNIXAddress(b"/tmp/x"), None),
            (UNIXAddress(None), None),
        ]
        for address, key in cases:
            self.assertEqual(address_key(address), key, address)


class LogTests(unittest.SynchronousTestCase):
    def test_noChatTextInLog(self) -> None:
        """
        Lines said, whispered, refused as too long, flooded or held for a
        slow reader leave no trace of their text in any log event.
        """
        events = capture_events(self)
        harness = Harness(
            Limits(
                max_line=100,
                flood_rate=4,
                flood_burst=3,
                flood_queue=3,
                sendq=200,
                idle_timeout=30,
                max_clients=4,
            )
        )
        a, b, c = harness.clients(3)
        c.transport.producer.pauseProducing()
        a.lines("zebra-one-said")
        a.lines(f"/msg {b.nick} zebra-two-whispered")
        a.lines("/me zebra-three-acted")
        b.lines("zebra-four-" + "q" * 200)
        b.lines(*(f"zebra-five-flood-{n}" for n in range(10)))
        harness.advance(1)
        harness.connect()
        refused, _ = harness.build(harness.address())
        self.assertIsInstance(refused, Refusal)
        harness.advance(60)
        texts = [logged_text(e) for e in events]
        self.assertTrue(texts)
        for text in texts:
            self.assertNotIn("zebra", text)
        reasons = {e.get("reason") for e in chat_events(events)}
        for reason in (
            "line too long",
            "excess flood",
            "sendq exceeded",
            "idle timeout",
            "max clients",
        ):
            self.assertIn(reason, reasons)
        for event in chat_events(events):
            if "reason" in event:
                self.assertIn("peer", event)


# Over loopback


class Server(TrackedLineFactory):
    """
    The real factory on the real reactor, keeping the chat protocols it has
    built and telling a test when one of them is gone.
    """

    def __init__(self, limits: Limits) -> None:
        super().__init__(limits)
        self.built: list[LineProtocol] = []
        self._gone: dict[LineProtocol, list[Deferred[None]]] = {}

    def buildProtocol(self, addr: Any) -> Any:
        # Refusals are not tracked: they do not report their loss.
        protocol = LineFactory.buildProtocol(self, addr)
        if isinstance(protocol, LineProtocol):
            self.tracked.add(protocol)
            self.built.append(protocol)
        return protocol

    def lost(self, protocol: LineProtocol) -> None:
        super().lost(protocol)
        for d in self._gone.pop(protocol, []):
            d.callback(None)

    def when_gone(self, protocol: LineProtocol) -> Deferred[None]:
        if protocol not in self.tracked:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._gone.setdefault(protocol, []).append(d)
        return d.addTimeout(TIMEOUT, reactor)


def nick_of(client: LineClient) -> str:
    match = WELCOME.match(client.lines[0])
    assert match is not None, client.lines
    return match.group(1)


def said_by(client: LineClient, nick: str) -> list[str]:
    """
    The text of every room line from C{nick} that C{client} received.
    """
    prefix = f"[lobby] <{nick}> "
    return [line[len(prefix) :] for line in client.lines if line.startswith(prefix)]


def kilobyte_lines(first: int, count: int) -> list[str]:
    return [f"{n:06d} " + "x" * 1000 for n in range(first, first + count)]


async def seen(client: LineClient, line: str) -> None:
    """
    Wait until C{client} has received C{line}, whenever it came.
    """
    if line not in client.lines:
        await client.next_line(line)


def raw_socket(testcase: unittest.TestCase, port: int) -> socket.socket:
    """
    A plain client socket with a small receive buffer, set before connecting
    so that the window it advertises is small from the start.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    testcase.addCleanup(sock.close)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


class LoopbackTests(unittest.TestCase):
    async def start(self, limits: Limits) -> tuple[LoopbackChat, Server]:
        chat = LoopbackChat(self, limits)
        server = Server(limits)
        chat.factory = server
        await chat.start()
        return chat, server

    async def join_raw(
        self, chat: LoopbackChat, server: Server, watcher: LineClient
    ) -> tuple[socket.socket, LineProtocol]:
        sock = raw_socket(self, chat.port_number)
        joined = await watcher.next_line(re.compile(r"^\[lobby\] --> guest\d+ joined$"))
        proto = server.built[-1]
        assert proto.member is not None
        self.assertIn(proto.member.nick, joined)
        self.assertEqual(proto.transport.getPeer().port, sock.getsockname()[1])
        return sock, proto

    @deferred_test
    async def test_stalledClientDisconnected(self) -> None:
        """
        A client that never reads is disconnected once more than C{sendq}
        bytes wait for it; what is held for it never exceeds that, and a
        client that reads gets every line, in order.
        """
        events = capture_events(self)
        limits = Limits(flood_rate=0, sendq=64 * 1024)
        chat, server = await self.start(limits)
        sender = await chat.connect()
        reader = await chat.connect()
        nick = nick_of(sender)
        sock, stalled = await self.join_raw(chat, server, reader)
        assert stalled.member is not None
        stalled_nick = stalled.member.nick

        sent: list[str] = []
        batch = 256
        while stalled.member.connected:
            if len(sent) > 32 * 1024:
                self.fail(f"still connected after {len(sent)} lines of 1 KB")
            texts = kilobyte_lines(len(sent), batch)
            sender.send(*texts)
            sent += texts
            await reader.next_line(f"[lobby] <{nick}> {texts[-1]}")
            self.assertLessEqual(stalled._backlog.size, limits.sendq)

        await seen(reader, f"[lobby] <-- {stalled_nick} quit (SendQ exceeded)")
        await server.when_gone(stalled)
        self.assertEqual(said_by(reader, nick), sent)
        [event] = with_reason(events, "sendq exceeded")
        self.assertEqual(event["peer"].port, sock.getsockname()[1])

        # The stalled client finds its connection reset or closed.
        with self.assertRaises((ConnectionResetError, EOFError)):
            for _ in range(100_000):
                if not sock.recv(1 << 20):
                    raise EOFError()

    @deferred_test
    async def test_slowClientUnderSendq(self) -> None:
        """
        A client that stops reading while its output is held below
        C{sendq} stays connected, and once it reads again gets everything,
        in order.
        """
        limits = Limits(flood_rate=0, sendq=32 * 1024 * 1024)
        chat, server = await self.start(limits)
        sender = await chat.connect()
        reader = await chat.connect()
        nick = nick_of(sender)

        sock = raw_socket(self, chat.port_number)
        slow = LineClient()
        factory = Factory.forProtocol(lambda: slow)
        adopt = reactor.adoptStreamConnection  # type: ignore[attr-defined]
        adopt(sock.fileno(), socket.AF_INET, factory)
        # The reactor has its own copy of the socket now.
        sock.close()
        assert slow.transport is not None
        slow.transport.pauseProducing()
        chat.clients.append(slow)
        await reader.next_line(re.compile(r"^\[lobby\] --> guest\d+ joined$"))
        proto = server.built[-1]

        sent: list[str] = []
        batch = 256
        # Send until the server holds output for the slow client itself,
        # beyond what the kernel and the transport buffer.
        while not proto._backlog.size:
            if len(sent) > 16 * 1024:
                self.fail(f"output never held after {len(sent)} lines of 1 KB")
            texts = kilobyte_lines(len(sent), batch)
            sender.send(*texts)
            sent += texts
            await reader.next_line(f"[lobby] <{nick}> {texts[-1]}")
        self.assertTrue(proto._backlog.paused)
        self.assertLessEqual(proto._backlog.size, limits.sendq)
        assert proto.member is not None
        self.assertTrue(proto.member.connected)

        slow.transport.resumeProducing()
        await slow.next_line(f"[lobby] <{nick}> {sent[-1]}")
        self.assertEqual(said_by(slow, nick), sent)
        self.assertEqual(said_by(reader, nick), sent)
        self.assertTrue(proto.member.connected)
        self.assertEqual(proto._backlog.size, 0)

    @deferred_test
    async def test_flooderDoesNotDelayOthers(self) -> None:
        """
        With the default limits, a client sending 5,000 lines at once does
        not keep another client's line from reaching the room within a
        second, and is disconnected with an error.
        """
        events = capture_events(self)
        chat, _ = await self.start(Limits())
        flooder = await chat.connect()
        talker = await chat.connect()
        listener = await chat.connect()
        flooder_nick, talker_nick = nick_of(flooder), nick_of(talker)
        assert flooder.transport is not None
        flooder_port = flooder.transport.getHost().port

        flooder.send(*(f"flood {n:04d}" for n in range(5000)))
        talker.send("still here")
        await listener.next_line(f"[lobby] <{talker_nick}> still here", timeout=1.0)

        await flooder.next_line(
            "!!! Excess flood: more than 100 lines waiting at 5 lines a second; "
            "disconnecting."
        )
        await flooder.when_lost()
        await seen(listener, f"[lobby] <-- {flooder_nick} quit (excess flood)")
        flooded = [line for line in listener.lines if "> flood " in line]
        self.assertEqual(
            flooded, [f"[lobby] <{flooder_nick}> flood {n:04d}" for n in range(20)]
        )
        [event] = with_reason(events, "excess flood")
        self.assertEqual(event["peer"].port, flooder_port)
        for event in events:
            self.assertNotIn("flood 0", logged_text(event))
            self.assertNotIn("still here", logged_text(event))

    @deferred_test
    async def test_maxClients(self) -> None:
        """
        Over TCP: a connection past C{max_clients} gets one line and is
        closed; once an earlier connection is gone, a new one is accepted.
        """
        events = capture_events(self)
        chat, server = await self.start(Limits(max_clients=2))
        first = await chat.connect()
        await chat.connect()

        refused = await chat.connect(welcome=False)
        assert refused.transport is not None
        refused_port = refused.transport.getHost().port
        await refused.when_lost()
        self.assertEqual(
            refused.lines, ["!!! The server is full (2 connections); try again later."]
        )
        self.assertEqual(len(server.chat.members), 2)
        [event] = with_reason(events, "max clients")
        self.assertEqual(event["peer"].port, refused_port)

        assert first.transport is not None
        first.transport.loseConnection()
        await first.when_lost()
        await server.when_gone(server.built[0])
        again = await chat.connect()
        self.assertRegex(again.lines[0], WELCOME)
        self.assertEqual(len(server.chat.members), 2)

    @deferred_test
    async def test_keepaliveAndNodelay(self) -> None:
        """
        Accepted sockets have TCP keepalive and TCP_NODELAY on.
        """
        chat, server = await self.start(Limits())
        await chat.connect()
        [proto] = server.built
        handle = proto.transport.getHandle()  # type: ignore[union-attr]
        self.assertNotEqual(
            handle.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 0
        )
        self.assertNotEqual(
            handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 0
        )


class DroppedOnceTests(unittest.SynchronousTestCase):
    """
    A connection the server drops is logged once, with its reason: not a
    second time, as "Connection was closed cleanly", when it closes.
    """

    def dropped(
        self, limits: Limits, act: Callable[[Harness, Connection], None]
    ) -> None:
        events = capture_events(self)
        harness = Harness(limits)
        client = harness.connect()
        act(harness, client)
        self.assertFalse(client.connected)
        client.lost()
        peer = client.transport.getPeer()
        said = [
            formatEvent(e)
            for e in chat_events(events)
            if e.get("peer") == peer and "disconnected" in e.get("log_format", "")
        ]
        self.assertEqual(len(said), 1, said)

    def test_idle(self) -> None:
        self.dropped(Limits(idle_timeout=10), lambda h, c: h.advance(10))

    def test_flood(self) -> None:
        self.dropped(FLOOD, lambda h, c: c.lines(*["x"] * 20))

    def test_tls(self) -> None:
        self.dropped(Limits(), lambda h, c: c.send(b"\x16\x03\x01\x02\x00"))

    def test_quitIsLoggedOnce(self) -> None:
        self.dropped(Limits(), lambda h, c: c.say("/quit"))
