"""
Tests for what the server tells its operators: the counts of
L{chatservice.core.stats}, the Prometheus metrics of L{chatservice.server.metrics}, the
JSON log lines of L{chatservice.server.logs}, and the structured log events of the
registry and the protocol.

Everything runs in memory on a L{Clock}, except the few tests that need the
reactor running: a collection from a thread, and a scrape of C{/metrics}
over loopback.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import (
    LogEvent,
    Logger,
    LogLevel,
    formatEvent,
)
from twisted.python import log as legacy_log
from twisted.python import threadable
from twisted.python.failure import Failure
from twisted.trial import unittest

from chatservice.core.events import Closing
from chatservice.core.history import History
from chatservice.core.rooms import Member
from chatservice.core.stats import FANOUT_BUCKETS, WRITE_BUCKETS, Histogram, Stats
from chatservice.frontends.limits import Limits
from chatservice.frontends.line.protocol import LineFactory
from chatservice.frontends.line.wire import Notice
from chatservice.server import logs
from chatservice.server.metrics import (
    REFUSALS,
    ChatCollector,
    Counts,
    families,
    metrics_site,
    snapshot,
)
from tests.support.helpers import TIMEOUT, capture_events, deferred_test, with_format
from tests.support.lines import RENDERER, LineChat
from tests.support.memory import Harness, ManualScheduler

# One token every quarter of a second, three at once, five held at most.
FLOOD = Limits(flood_rate=4, flood_burst=3, flood_queue=5)

# A word nobody but the tests would say, to look for in the log.
SECRET = "xylophone7quokka"


# Helpers


def chat_numbers(factory: LineFactory) -> tuple[Stats, Counts]:
    """
    What the metrics read of C{factory}, as C{makeService} passes it: the
    stats, and a callable that counts clients and rooms.
    """
    chat = factory.chat
    return factory.stats, lambda: (len(chat.members), len(chat.rooms))


class Recorder:
    """
    A recipient that keeps what it is sent.
    """

    renderer = RENDERER

    def __init__(self) -> None:
        self.data = b""
        self.closed = False

    def deliver(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True

    def lines(self) -> list[str]:
        return self.data.decode("utf-8").split("\r\n")[:-1]


class Ticker:
    """
    A timer that moves on by C{step} every time it is read.
    """

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 100.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.step
        return self.now


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """
    Every sample of a Prometheus text page, by name and sorted labels.
    """
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class CollectingReactor:
    """
    Stands in for the reactor in L{ChatCollector}: runs what is called from
    a thread at once, and counts those calls.
    """

    def __init__(self, allowed: bool = True) -> None:
        self.allowed = allowed
        self.calls = 0

    def callFromThread(self, f: Callable[..., object], *args: object) -> None:
        if not self.allowed:
            raise AssertionError("the collector called into the reactor")
        self.calls += 1
        f(*args)


# stats


class HistogramTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.histogram = Histogram((1.0, 2.0, 5.0))

    def test_valueOnBoundCountsInThatBucket(self) -> None:
        """
        A value equal to an upper bound counts in that bound's bucket, as
        Prometheus's C{le} ("less than or equal") says.
        """
        for value in (1.0, 2.0, 5.0):
            self.histogram.observe(value)
        self.assertEqual(self.histogram.counts, [1, 1, 1, 0])

    def test_justAboveBoundCountsInNext(self) -> None:
        self.histogram.observe(1.0000001)
        self.histogram.observe(2.0000001)
        self.assertEqual(self.histogram.counts, [0, 1, 1, 0])

    def test_aboveLastBoundCountsInInfinity(self) -> None:
        self.histogram.observe(5.000001)
        self.histogram.observe(1e9)
        self.assertEqual(self.histogram.counts, [0, 0, 0, 2])
        self.assertEqual(self.histogram.cumulative()[-1], (math.inf, 2))

    def test_zeroAndBelowInFirstBucket(self) -> None:
        self.histogram.observe(0.0)
        self.histogram.observe(-1.0)
        self.assertEqual(self.histogram.counts, [2, 0, 0, 0])

    def test_observeTimes(self) -> None:
        """
        C{observe(v, times)} is C{times} observations of C{v}.
        """
        self.histogram.observe(1.5, 3)
        self.assertEqual(self.histogram.counts, [0, 3, 0, 0])
        self.assertEqual(self.histogram.count, 3)
        self.assertEqual(self.histogram.sum, 4.5)

    def test_cumulative(self) -> None:
        for value in (0.5, 1.5, 1.7, 3.0, 6.0, 7.0):
            self.histogram.observe(value)
        self.assertEqual(
            self.histogram.cumulative(),
            [(1.0, 1), (2.0, 3), (5.0, 4), (math.inf, 6)],
        )

    def test_emptyCumulative(self) -> None:
        self.assertEqual(
            self.histogram.cumulative(),
            [(1.0, 0), (2.0, 0), (5.0, 0), (math.inf, 0)],
        )
        self.assertEqual((self.histogram.sum, self.histogram.count), (0.0, 0))

    def test_sumAndCount(self) -> None:
        self.histogram.observe(0.25)
        self.histogram.observe(4.0, 2)
        self.histogram.observe(10.0)
        self.assertEqual(self.histogram.sum, 18.25)
        self.assertEqual(self.histogram.count, 4)
        self.assertEqual(sum(self.histogram.counts), self.histogram.count)

    def test_serverBucketsAscend(self) -> None:
        """
        The server's bounds are strictly ascending: bisection needs them so.
        """
        for bounds in (FANOUT_BUCKETS, WRITE_BUCKETS):
            self.assertEqual(list(bounds), sorted(set(bounds)))

    def test_serverBuckets(self) -> None:
        """
        The bounds are 1, 2.5 and 5 times powers of ten, exactly (they are
        the C{le} labels of the metrics), over the documented ranges.
        """
        self.assertEqual(
            [repr(bound) for bound in FANOUT_BUCKETS],
            "1e-05 2.5e-05 5e-05 0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 "
            "0.025 0.05 0.1 0.25 0.5 1.0".split(),
        )
        self.assertEqual(
            [repr(bound) for bound in WRITE_BUCKETS],
            "0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1.0 2.5 5.0 "
            "10.0".split(),
        )

    def test_statsDoNotShare(self) -> None:
        """
        Every L{Stats} has histograms and refusal counts of its own.
        """
        one, two = Stats(), Stats()
        one.fanout.observe(1.0)
        one.history_writes.observe(1.0)
        one.refused["max clients"] += 1
        self.assertEqual(two.fanout.count, 0)
        self.assertEqual(two.history_writes.count, 0)
        self.assertEqual(two.refused, {})


class RegistryStatsTests(unittest.SynchronousTestCase):
    """
    Deliveries and fan-out times as the registry counts them.
    """

    def setUp(self) -> None:
        self.turns = ManualScheduler()
        self.ticker = Ticker(0.003)
        self.registry = LineChat(
            schedule=self.turns, history=History(), timer=self.ticker
        )
        self.recorders: list[Recorder] = []

    @property
    def stats(self) -> Stats:
        return self.registry.stats

    def members(self, n: int) -> list[Member]:
        members = []
        for _ in range(n):
            recorder = Recorder()
            members.append(self.registry.connect(recorder))
            self.recorders.append(recorder)
        self.turns.run()
        for recorder in self.recorders:
            recorder.data = b""
        return members

    def delivered(self) -> int:
        """
        Lines the recipients have been handed since they were last emptied.
        """
        return sum(len(recorder.lines()) for recorder in self.recorders)

    def test_roomLineCountsEveryOtherMember(self) -> None:
        a, _, _, _ = self.members(4)
        before = self.stats.deliveries
        self.registry.say(a, "hi")
        self.turns.run()
        self.assertEqual(self.stats.deliveries - before, 3)
        self.assertEqual(self.delivered(), 3)

    def test_severalLinesFromSeveralSendersInOneTurn(self) -> None:
        """
        Three lines from two senders in a room of four: each line counts
        for the three members who did not say it.
        """
        a, b, _, _ = self.members(4)
        before = self.stats.deliveries
        self.registry.say(a, "one")
        self.registry.say(b, "two")
        self.registry.say(a, "three")
        self.turns.run()
        self.assertEqual(self.stats.deliveries - before, 9)
        self.assertEqual(self.delivered(), 9)

    def test_tellCountsOne(self) -> None:
        a, b = self.members(2)
        before = self.stats.deliveries
        self.registry.tell(a, Notice("for a"))
        self.registry.whisper(a, b.nick, "psst")
        self.turns.run()
        self.assertEqual(self.stats.deliveries - before, 2)
        self.assertEqual(self.delivered(), 2)

    def test_deliveriesAreWhatRecipientsGet(self) -> None:
        """
        Over a session of joins, renames, actions, private lines, parts and a
        quit, the count is exactly the lines recipients were handed.
        """
        a, b, c = self.members(3)
        before = self.stats.deliveries
        self.registry.join(a, "python")
        self.registry.join(b, "python")
        self.registry.say(a, "in python")
        self.registry.act(b, "waves")
        self.registry.rename(c, "carol")
        self.registry.whisper(c, a.nick, "hello")
        self.turns.run()
        self.registry.part(a, "python")
        self.registry.say(c, "in the lobby")
        self.registry.quit(b, "bye")
        self.turns.run()
        self.assertEqual(self.stats.deliveries - before, self.delivered())

    def test_fanoutObservedOncePerRoomLine(self) -> None:
        """
        Each room line of a turn is one observation of that turn's fan-out
        time, read from the registry's timer.
        """
        a, b, _ = self.members(3)
        self.registry.join(b, "python")
        self.turns.run()
        fanout = self.stats.fanout
        count, total = fanout.count, fanout.sum
        self.registry.say(a, "one")
        self.registry.say(b, "two")
        self.registry.say(a, "three")
        self.registry.say(b, "in python")
        self.assertEqual(fanout.count, count)
        self.turns.run()
        self.assertEqual(fanout.count - count, 4)
        self.assertAlmostEqual(fanout.sum - total, 4 * 0.003)
        # All four in the bucket for 3 ms.
        bucket = FANOUT_BUCKETS.index(0.005)
        self.assertEqual(fanout.counts[bucket], fanout.count)

    def test_noRoomLinesNoObservation(self) -> None:
        a, _ = self.members(2)
        count = self.stats.fanout.count
        self.registry.tell(a, Notice("only for a"))
        self.turns.run()
        self.assertEqual(self.stats.fanout.count, count)

    def test_fanoutTimedOverTheDelivery(self) -> None:
        """
        The time observed is from before the first write to after the last.
        """
        a, b = self.members(2)
        recorder = self.recorders[1]
        ticker = self.ticker

        class Slow(Recorder):
            def deliver(self, data: bytes) -> None:
                ticker.now += 0.5
                recorder.deliver(data)

        b.session = Slow()
        count = self.stats.fanout.count
        self.registry.say(a, "slowly")
        self.turns.run()
        self.assertEqual(self.stats.fanout.count - count, 1)
        self.assertEqual(self.stats.fanout.counts[-1], 0)
        self.assertEqual(
            self.stats.fanout.counts[FANOUT_BUCKETS.index(1.0)], 1, "0.503 s"
        )

    def test_closeAllCounts(self) -> None:
        """
        Closing counts the room lines still pending, and one last line for
        every member.
        """
        a, _, _ = self.members(3)
        before = self.stats.deliveries
        self.registry.say(a, "last words")
        self.registry.close_all(Closing())
        self.assertEqual(self.stats.deliveries - before, 2 + 3)
        self.assertEqual(self.delivered(), 5)


class ProtocolStatsTests(unittest.SynchronousTestCase):
    """
    What the protocol and the factory count, in memory.
    """

    def test_bytesIn(self) -> None:
        harness = Harness()
        [a] = harness.clients(1)
        stats = harness.factory.stats
        a.send(b"hello\nwor")
        self.assertEqual(stats.bytes_in, 9)
        a.send(b"ld\r\n")
        self.assertEqual(stats.bytes_in, 13)

    def test_bytesOutIsWhatTransportsGot(self) -> None:
        """
        Every byte written to a client counts, a refusal's line included.
        """
        harness = Harness(Limits(flood_rate=0, max_clients=3))
        a, b, c = (harness.connect() for _ in range(3))
        a.lines("hello", "/nick alice", "/join python")
        b.lines(f"/msg {c.nick} psst", "/who")
        c.say("/quit")
        _, refused = harness.build(harness.address())
        self.assertTrue(refused.value().startswith(b"!!! "))
        sent = sum(len(conn.everything()) for conn in (a, b, c))
        self.assertGreater(sent, 0)
        self.assertEqual(harness.factory.stats.bytes_out, sent + len(refused.value()))

    def test_linesReceived(self) -> None:
        """
        Every complete line counts, blank ones and commands included; a
        partial line counts once it is complete.
        """
        harness = Harness(Limits(flood_rate=0))
        [a] = harness.clients(1)
        stats = harness.factory.stats
        a.send(b"one\n\n/nick alice\r\ntwo\npart")
        self.assertEqual(stats.lines_received, 4)
        a.send(b"ial\n")
        self.assertEqual(stats.lines_received, 5)

    def test_lastLineAtEndOfInputCounted(self) -> None:
        """
        A last line without a newline before end of input is handled like
        any other line, and counted like one.
        """
        harness = Harness(Limits(flood_rate=0))
        a, b = harness.clients(2)
        a.send(b"bye")
        a.half_close()
        self.assertIn(f"[lobby] <{a.nick}> bye", b.take())
        self.assertEqual(harness.factory.stats.lines_received, 1)

    def test_floodDelayed(self) -> None:
        """
        Lines beyond the burst are counted as delayed when they are held,
        once each, whether or not others are already held.
        """
        harness = Harness(FLOOD)
        a, b = harness.clients(2)
        stats = harness.factory.stats
        a.lines("1", "2", "3", "4", "5")
        self.assertEqual(stats.flood_delayed, 2)
        self.assertEqual(len(b.take()), 3)
        a.lines("6")
        self.assertEqual(stats.flood_delayed, 3)
        harness.settle(5)
        self.assertEqual(len(b.take()), 3)
        self.assertEqual(stats.flood_delayed, 3)
        self.assertEqual(stats.lines_received, 6)

    def test_noFloodControlNothingDelayed(self) -> None:
        harness = Harness(Limits(flood_rate=0))
        [a] = harness.clients(1)
        a.lines(*[str(n) for n in range(50)])
        self.assertEqual(harness.factory.stats.flood_delayed, 0)

    def test_sendqDisconnects(self) -> None:
        harness = Harness(Limits(flood_rate=0, sendq=100))
        a, b, _ = harness.clients(3)
        b.transport.producer.pauseProducing()
        a.lines("x" * 60)
        self.assertEqual(harness.factory.stats.sendq_disconnects, 0)
        a.lines("x" * 60)
        self.assertFalse(b.connected)
        self.assertEqual(harness.factory.stats.sendq_disconnects, 1)
        a.lines("x" * 60)
        self.assertEqual(harness.factory.stats.sendq_disconnects, 1)

    def test_refusedMaxClients(self) -> None:
        harness = Harness(Limits(max_clients=2))
        harness.clients(2)
        for _ in range(2):
            harness.build(harness.address())
        self.assertEqual(harness.factory.stats.refused, {"max clients": 2})

    def test_refusedMaxPerIp(self) -> None:
        harness = Harness(Limits(max_per_ip=1))
        harness.connect(harness.address("10.0.0.9"))
        harness.build(harness.address("10.0.0.9"))
        harness.connect(harness.address("10.0.0.10"))
        self.assertEqual(harness.factory.stats.refused, {"max per ip": 1})


# metrics


class MetricsTests(unittest.SynchronousTestCase):
    """
    The metric families, collected on what stands for the reactor thread.
    """

    def setUp(self) -> None:
        # This thread is the reactor's, for the collector.
        self.patch(threadable, "ioThread", threadable.getThreadID())
        self.harness = Harness(Limits(flood_rate=0, max_clients=3))

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(
            ChatCollector(
                *chat_numbers(self.harness.factory), CollectingReactor(allowed=False)
            )
        )
        return samples(generate_latest(registry).decode("utf-8"))

    def test_names(self) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(
            ChatCollector(
                *chat_numbers(self.harness.factory), CollectingReactor(allowed=False)
            )
        )
        text = generate_latest(registry).decode("utf-8")
        kinds = {f.name: f.type for f in text_string_to_metric_families(text)}
        self.assertEqual(
            kinds,
            {
                "chat_clients": "gauge",
                "chat_rooms": "gauge",
                "chat_lines_received": "counter",
                "chat_deliveries": "counter",
                "chat_received_bytes": "counter",
                "chat_sent_bytes": "counter",
                "chat_flood_delayed_lines": "counter",
                "chat_sendq_disconnects": "counter",
                "chat_refused_connections": "counter",
                "chat_fanout_seconds": "histogram",
                "chat_history_write_seconds": "histogram",
            },
        )

    def test_values(self) -> None:
        harness = self.harness
        a, b, _ = harness.clients(3)
        a.lines("hello", "/join python")
        b.say("hi")
        harness.build(harness.address())
        stats = harness.factory.stats
        stats.flood_delayed = 7
        stats.sendq_disconnects = 2
        got = self.scrape()
        expected = {
            "chat_clients": 3,
            "chat_rooms": 2,
            "chat_lines_received_total": 3,
            "chat_deliveries_total": stats.deliveries,
            "chat_received_bytes_total": stats.bytes_in,
            "chat_sent_bytes_total": stats.bytes_out,
            "chat_flood_delayed_lines_total": 7,
            "chat_sendq_disconnects_total": 2,
        }
        self.assertGreater(stats.deliveries, 0)
        self.assertGreater(stats.bytes_in, 0)
        for name, value in expected.items():
            self.assertEqual(got[(name, ())], value, name)
        self.assertEqual(
            got[("chat_refused_connections_total", (("reason", "max_clients"),))], 1
        )

    def test_refusalReasonsAtZero(self) -> None:
        """
        Every refusal reason has a series from the start, at 0.
        """
        got = self.scrape()
        self.assertEqual(set(REFUSALS), {"max clients", "max per ip"})
        for reason in ("max_clients", "max_per_ip"):
            self.assertEqual(
                got[("chat_refused_connections_total", (("reason", reason),))], 0
            )

    def test_histogramBuckets(self) -> None:
        """
        Buckets are cumulative, end with C{+Inf}, and C{_count} and C{_sum}
        match what was observed.
        """
        fanout = self.harness.factory.stats.fanout
        fanout.observe(0.00001)
        fanout.observe(0.0003, 4)
        fanout.observe(2.0)
        got = self.scrape()
        buckets = [
            (dict(labels)["le"], value)
            for (name, labels), value in got.items()
            if name == "chat_fanout_seconds_bucket"
        ]
        self.assertEqual(len(buckets), len(FANOUT_BUCKETS) + 1)
        self.assertEqual(buckets[-1], ("+Inf", 6))
        self.assertEqual([float(le) for le, _ in buckets[:-1]], list(FANOUT_BUCKETS))
        counts = [value for _, value in buckets]
        self.assertEqual(counts, sorted(counts))
        by_bound = dict(buckets)
        self.assertEqual(by_bound["1e-05"], 1)
        self.assertEqual(by_bound["0.00025"], 1)
        self.assertEqual(by_bound["0.0005"], 5)
        self.assertEqual(by_bound["1.0"], 5)
        self.assertEqual(got[("chat_fanout_seconds_count", ())], 6)
        self.assertAlmostEqual(got[("chat_fanout_seconds_sum", ())], 2.00121)
        self.assertEqual(got[("chat_history_write_seconds_count", ())], 0)

    def test_snapshotIsACopy(self) -> None:
        """
        A snapshot does not change when the counts do afterwards: it is
        formatted on another thread while the reactor counts on.
        """
        stats = self.harness.factory.stats
        stats.refused["max clients"] = 1
        stats.fanout.observe(0.1)
        numbers = snapshot(*chat_numbers(self.harness.factory))
        stats.refused["max clients"] += 1
        stats.fanout.observe(0.1)
        stats.lines_received += 1
        self.assertEqual(numbers.refused, {"max clients": 1, "max per ip": 0})
        self.assertEqual(numbers.fanout[0][-1], (math.inf, 1))
        self.assertAlmostEqual(numbers.fanout[1], 0.1)
        self.assertEqual(numbers.lines_received, 0)

    def test_familiesOfASnapshot(self) -> None:
        names = [
            family.name
            for family in families(snapshot(*chat_numbers(self.harness.factory)))
        ]
        self.assertEqual(len(names), len(set(names)))
        self.assertIn("chat_fanout_seconds", names)

    def test_collectOnReactorThreadCallsNothing(self) -> None:
        """
        On the reactor thread the numbers are read directly.
        """
        fake = CollectingReactor(allowed=False)
        collected = list(
            ChatCollector(*chat_numbers(self.harness.factory), fake).collect()
        )
        self.assertEqual(fake.calls, 0)
        self.assertIn("chat_clients", [family.name for family in collected])

    def test_collectOffReactorThreadAsksTheReactor(self) -> None:
        """
        Elsewhere the numbers are read by the reactor, through
        C{callFromThread}.
        """
        self.patch(threadable, "ioThread", object())
        self.harness.clients(2)
        fake = CollectingReactor()
        collected = list(
            ChatCollector(*chat_numbers(self.harness.factory), fake).collect()
        )
        self.assertEqual(fake.calls, 1)
        [clients] = [family for family in collected if family.name == "chat_clients"]
        self.assertEqual(clients.samples[0].value, 2)

    def test_registeringDoesNotCollect(self) -> None:
        """
        Building the site (which registers the collector) asks the reactor
        nothing: it is not running yet.
        """
        self.patch(threadable, "ioThread", object())
        fake = CollectingReactor(allowed=False)
        metrics_site(*chat_numbers(self.harness.factory), fake)
        self.assertEqual(fake.calls, 0)
        self.assertEqual(
            list(ChatCollector(*chat_numbers(self.harness.factory), fake).describe()),
            [],
        )


class HTTPClient(Protocol):
    """
    Sends one HTTP/1.0 request and collects the response until the server
    closes the connection.
    """

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.data = b""
        self.done: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.done.callback(self.data)


def get(port: int, path: str) -> Deferred[bytes]:
    client = HTTPClient(
        f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode("ascii")
    )
    factory = ClientFactory.forProtocol(lambda: client)
    reactor.connectTCP("127.0.0.1", port, factory, timeout=TIMEOUT)
    return client.done.addTimeout(TIMEOUT, reactor)


class GuardedReactor:
    """
    The real reactor, for L{ChatCollector}, except that calling into it from
    its own thread (which would deadlock C{blockingCallFromThread}) fails.
    """

    def __init__(self) -> None:
        self.calls = 0

    def callFromThread(self, f: Callable[..., object], *args: object) -> None:
        if threadable.isInIOThread():
            raise AssertionError("callFromThread on the reactor thread")
        self.calls += 1
        reactor.callFromThread(f, *args)


class ReactorMetricsTests(unittest.TestCase):
    """
    Collection with the reactor running, as in the server.
    """

    def setUp(self) -> None:
        self.harness = Harness()
        self.harness.clients(2)
        self.reactor = GuardedReactor()
        self.collector = ChatCollector(
            *chat_numbers(self.harness.factory), self.reactor
        )

    @deferred_test
    async def test_collectFromReactorThread(self) -> None:
        """
        On the reactor thread, with the reactor running, the numbers are
        read there and then.
        """

        def collect() -> list[Any]:
            self.assertTrue(threadable.isInIOThread())
            return list(self.collector.collect())

        collected = await deferLater(reactor, 0, collect)
        by_name = {family.name: family for family in collected}
        self.assertEqual(by_name["chat_clients"].samples[0].value, 2)
        self.assertEqual(self.reactor.calls, 0)

    @deferred_test
    async def test_collectFromAnotherThread(self) -> None:
        """
        From a thread of the pool (where C{prometheus_client}'s Twisted
        resource renders the page) the reactor takes the snapshot.
        """

        def collect() -> list[Any]:
            self.assertFalse(threadable.isInIOThread())
            return list(self.collector.collect())

        collected = await deferToThread(collect)
        by_name = {family.name: family for family in collected}
        self.assertEqual(by_name["chat_clients"].samples[0].value, 2)
        self.assertEqual(by_name["chat_rooms"].samples[0].value, 1)
        self.assertEqual(self.reactor.calls, 1)

    @deferred_test
    async def test_scrapeOverHTTP(self) -> None:
        """
        The site serves the Prometheus text format at C{/metrics}, chat and
        process metrics alike, logs no access line, and has nothing at C{/}.
        """
        site = metrics_site(*chat_numbers(self.harness.factory), reactor)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        number = port.getHost().port
        events = capture_events(self)
        response = await get(number, "/metrics")
        head, _, body = response.partition(b"\r\n\r\n")
        status, *headers = head.decode("latin-1").split("\r\n")
        self.assertIn(" 200 ", status)
        content_type = [
            h.split(":", 1)[1].strip()
            for h in headers
            if h.lower().startswith("content-type:")
        ]
        self.assertEqual(len(content_type), 1)
        self.assertTrue(content_type[0].startswith("text/plain"), content_type)
        got = samples(body.decode("utf-8"))
        self.assertEqual(got[("chat_clients", ())], 2)
        if Path("/proc/self/stat").exists():
            self.assertIn(("process_open_fds", ()), got)
        self.assertEqual(
            [e for e in events if "/metrics" in formatEvent(e)], [], "access logged"
        )
        response = await get(number, "/")
        self.assertIn(b" 404 ", response.split(b"\r\n", 1)[0])


# logs


def event(**fields: Any) -> LogEvent:
    base: LogEvent = {
        "log_time": 1_800_000_000.25,
        "log_level": LogLevel.info,
        "log_namespace": "chatservice.test",
        "log_format": "something happened",
    }
    base.update(fields)
    return base


def record(**fields: Any) -> dict[str, Any]:
    line = logs.as_json(event(**fields))
    parsed: dict[str, Any] = json.loads(line)
    return parsed


class DescribeTests(unittest.SynchronousTestCase):
    def test_ipv4(self) -> None:
        self.assertEqual(
            logs.describe(IPv4Address("TCP", "192.0.2.1", 51234)), "192.0.2.1:51234"
        )

    def test_ipv6(self) -> None:
        self.assertEqual(
            logs.describe(IPv6Address("TCP", "2001:db8::1", 6697)),
            "[2001:db8::1]:6697",
        )

    def test_unix(self) -> None:
        self.assertEqual(
            logs.describe(UNIXAddress("/tmp/chat.sock")), "unix:/tmp/chat.sock"
        )

    def test_unixBytesPath(self) -> None:
        self.assertEqual(
            logs.describe(UNIXAddress(b"/tmp/caf\xc3\xa9.sock")), "unix:/tmp/café.sock"
        )
        self.assertEqual(
            logs.describe(UNIXAddress(b"/tmp/\xff.sock")), "unix:/tmp/\ufffd.sock"
        )

    def test_unnamedUnix(self) -> None:
        """
        The peer of a UNIX connection usually has no name.
        """
        self.assertEqual(logs.describe(UNIXAddress(None)), "unix")
        self.assertEqual(logs.describe(UNIXAddress(b"")), "unix")

    def test_plainValuesKept(self) -> None:
        for value in (None, True, 3, 2.5, "text"):
            self.assertIs(logs.describe(value), value)

    def test_othersAsText(self) -> None:
        class Thing:
            def __str__(self) -> str:
                return "a thing"

        self.assertEqual(logs.describe(Thing()), "a thing")
        self.assertEqual(logs.describe(b"raw"), "b'raw'")
        self.assertEqual(logs.describe({"a": 1}), "{'a': 1}")

    def test_sequences(self) -> None:
        self.assertEqual(
            logs.describe((IPv4Address("TCP", "10.0.0.1", 1), 2, [b"x"])),
            ["10.0.0.1:1", 2, ["b'x'"]],
        )


class AsJsonTests(unittest.SynchronousTestCase):
    def test_standardKeys(self) -> None:
        got = record(
            log_level=LogLevel.warn,
            log_format="{peer} said {count} things",
            peer=IPv4Address("TCP", "10.1.2.3", 4000),
            count=3,
        )
        self.assertEqual(got["time"], "2027-01-15T08:00:00.250+00:00")
        self.assertEqual(got["level"], "warn")
        self.assertEqual(got["namespace"], "chatservice.test")
        self.assertEqual(
            got["text"],
            "10.1.2.3:4000 said 3 things",
        )
        self.assertEqual(got["peer"], "10.1.2.3:4000")
        self.assertEqual(got["count"], 3)

    def test_noLoggerInternals(self) -> None:
        got = record(
            log_logger=Logger(), log_source=object(), format="%s", message=("x",)
        )
        self.assertEqual(
            [k for k in got if k.startswith("log_") or k in ("format", "message")], []
        )

    def test_oneLine(self) -> None:
        line = logs.as_json(event(reason="a\nb\r\nc", log_format="x\ny"))
        self.assertTrue(line.endswith("\n"))
        self.assertEqual(line.count("\n"), 1)
        self.assertEqual(json.loads(line)["reason"], "a\nb\r\nc")

    def test_nonAsciiKept(self) -> None:
        line = logs.as_json(event(nick="zoë", log_format="{nick} 🎉"))
        self.assertIn("zoë 🎉", line)
        self.assertEqual(json.loads(line)["nick"], "zoë")

    def test_failure(self) -> None:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            failure = Failure()
        line = logs.as_json(event(log_failure=failure, log_level=LogLevel.critical))
        self.assertEqual(line.count("\n"), 1)
        got = json.loads(line)
        self.assertIn("ZeroDivisionError", got["traceback"])
        self.assertIn("Traceback", got["traceback"])
        self.assertEqual(got["level"], "critical")

    def test_noFailureNoTraceback(self) -> None:
        self.assertNotIn("traceback", record())

    def test_bareEvent(self) -> None:
        """
        An event without time, level or namespace still makes a line.
        """
        got = json.loads(logs.as_json({"log_format": "bare"}))
        self.assertEqual(got["time"], "1970-01-01T00:00:00.000+00:00")
        self.assertEqual(got["level"], "info")
        self.assertEqual(got["namespace"], "")
        self.assertEqual(got["text"], "bare")

    def test_unformattable(self) -> None:
        got = record(log_format="{missing} field")
        self.assertIn("Unable to format event", got["text"])

    def test_realEvents(self) -> None:
        """
        Events as the logger makes them, new-style and legacy, make lines.
        """
        events = capture_events(self)
        Logger(namespace="chatservice.test").info(
            "{nick} joined {room}", nick="alice", room="lobby"
        )
        legacy_log.msg("a legacy line")
        lines = [logs.as_json(e) for e in events]
        got = [json.loads(line) for line in lines]
        self.assertEqual(got[0]["text"], "alice joined lobby")
        self.assertEqual(got[0]["namespace"], "chatservice.test")
        self.assertEqual((got[0]["nick"], got[0]["room"]), ("alice", "lobby"))
        self.assertEqual(got[1]["text"], "a legacy line")


class JsonObserverTests(unittest.SynchronousTestCase):
    def emit(self, observer: Callable[[LogEvent], None]) -> None:
        observer(event(log_format="{nick} arrived", nick="alice"))

    def stdout(self) -> io.StringIO:
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        return out

    def test_foregroundToStdout(self) -> None:
        out = self.stdout()
        self.emit(logs.json_observer_for({"nodaemon": True, "logfile": None}))
        self.assertEqual(json.loads(out.getvalue())["text"], "alice arrived")

    def test_dashToStdout(self) -> None:
        out = self.stdout()
        self.emit(logs.json_observer_for({"nodaemon": False, "logfile": "-"}))
        self.assertEqual(json.loads(out.getvalue())["nick"], "alice")

    def test_jsonObserverToStdout(self) -> None:
        out = self.stdout()
        self.emit(logs.json_observer())
        self.assertEqual(json.loads(out.getvalue())["nick"], "alice")

    def test_logFile(self) -> None:
        out = self.stdout()
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory, True)
        path = directory / "chat.log"
        observer = logs.json_observer_for({"nodaemon": True, "logfile": str(path)})
        self.addCleanup(observer._outFile.close)  # type: ignore[attr-defined]
        self.emit(observer)
        self.emit(observer)
        lines = path.read_text("utf-8").splitlines()
        self.assertEqual([json.loads(line)["nick"] for line in lines], ["alice"] * 2)
        self.assertEqual(out.getvalue(), "")


# Structured events


class EventTests(unittest.SynchronousTestCase):
    """
    The registry's and the protocol's log events: who, where and why, and
    never what was said.
    """

    def setUp(self) -> None:
        self.events = capture_events(self)
        self.harness = Harness(Limits(flood_rate=0, max_line=100))

    def chat_events(self) -> list[LogEvent]:
        return [
            e
            for e in self.events
            if e.get("log_namespace", "").startswith("chatservice")
        ]

    def test_nickChange(self) -> None:
        a = self.harness.connect()
        old = a.nick
        a.say("/nick alice")
        [renamed] = with_format(self.events, "{old} is now known as {nick}")
        self.assertEqual((renamed["old"], renamed["nick"]), (old, "alice"))
        self.assertEqual(renamed["log_namespace"], "chatservice.core.chat")
        self.assertEqual(formatEvent(renamed), f"{old} is now known as alice")

    def test_joinAndPart(self) -> None:
        a = self.harness.connect()
        first = a.nick
        a.say("/nick alice")
        a.say("/join Python")
        a.say("/part python")
        joins = with_format(self.events, "{nick} joined {room}")
        self.assertEqual(
            [(e["nick"], e["room"]) for e in joins],
            [(first, "lobby"), ("alice", "Python")],
        )
        [part] = with_format(self.events, "{nick} left {room}")
        self.assertEqual((part["nick"], part["room"]), ("alice", "Python"))

    def test_connectAndDisconnect(self) -> None:
        a = self.harness.connect()
        nick = a.nick
        peer = a.transport.getPeer()
        [connected] = with_format(self.events, "{peer} connected as {nick}")
        self.assertEqual((connected["peer"], connected["nick"]), (peer, nick))
        a.lost()
        [gone] = with_format(self.events, "{peer} ({nick}) disconnected: {reason}")
        self.assertEqual(gone["peer"], peer)
        self.assertEqual(gone["nick"], nick)
        self.assertEqual(gone["reason"], "Connection was closed cleanly.")
        got = json.loads(logs.as_json(gone))
        self.assertEqual(got["peer"], f"{peer.host}:{peer.port}")

    def test_refusalEvent(self) -> None:
        harness = Harness(Limits(max_clients=1))
        harness.connect()
        address = harness.address()
        harness.build(address)
        [refused] = with_format(self.events, "{peer} refused: {reason}")
        self.assertEqual((refused["peer"], refused["reason"]), (address, "max clients"))

    def test_noChatTextLogged(self) -> None:
        """
        Nothing said, acted, whispered, quit with or refused as too long
        appears in any event's text or fields, even as JSON.
        """
        a, b = self.harness.clients(2)
        a.say(f"hello {SECRET}")
        a.say(f"/me hums {SECRET}")
        a.say(f"/msg {b.nick} {SECRET} privately")
        a.say(f"{SECRET} " * 20)
        b.say("/join side")
        b.say(f"/part side {SECRET}")
        a.say(f"/quit {SECRET}")
        a.lost()
        # The word did reach b: the search below means something.
        said = b.take()
        self.assertGreaterEqual(sum(SECRET in line for line in said), 4, said)
        self.assertTrue(self.chat_events())
        for logged in self.events:
            fields = [repr(v) for k, v in logged.items() if k != "log_logger"]
            self.assertNotIn(SECRET, formatEvent(logged))
            self.assertNotIn(SECRET, "\n".join(fields))
            self.assertNotIn(SECRET, logs.as_json(logged))


class BackplaneMetricsTests(unittest.SynchronousTestCase):
    """A cluster node's backplane counts, as Prometheus reads them."""

    def setUp(self) -> None:
        self.patch(threadable, "ioThread", threadable.getThreadID())

    def test_values(self) -> None:
        from chatservice.cluster.backplane import BackplaneStats
        from chatservice.server.metrics import BackplaneCollector

        stats = BackplaneStats(
            published=5,
            received=9,
            recovered=2,
            missed=1,
            round_trip=0.0015,
            renewals=4,
            claims_lost=1,
            reconnects=3,
            resets=1,
            dropped=0,
            nodes={"a", "b"},
        )
        registry = CollectorRegistry(auto_describe=False)
        registry.register(BackplaneCollector(stats, CollectingReactor(allowed=False)))
        got = samples(generate_latest(registry).decode("utf-8"))
        self.assertEqual(
            {name: value for (name, _), value in got.items()},
            {
                "chat_backplane_published_batches_total": 5,
                "chat_backplane_received_batches_total": 9,
                "chat_backplane_recovered_batches_total": 2,
                "chat_backplane_missed_batches_total": 1,
                "chat_backplane_lease_renewals_total": 4,
                "chat_backplane_leases_lost_total": 1,
                "chat_backplane_reconnects_total": 3,
                "chat_backplane_epoch_resets_total": 1,
                "chat_backplane_dropped_batches_total": 0,
                "chat_backplane_round_trip_seconds": 0.0015,
                "chat_backplane_nodes": 2,
            },
        )
