"""
Tests for L{chatservice.bench.point} (C{chat-bench}'s measurement): that a
run against a server which loses, repeats or garbles a line says so, and
that a run against a correct one finds nothing wrong.

The servers are small Twisted relays run as subprocesses on 127.0.0.1, like
the minimal peer in C{chatservice/bench/peers/}, but with one deliberate
fault. Runs are tiny (a few receivers, one sender, half a second), so that
each test takes a couple of seconds.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from chatservice.bench.launch import (
    MINIMAL_PEER,
    launched,
    ours_command,
    peer_command,
)
from chatservice.bench.options import Options
from chatservice.bench.point import run_point
from chatservice.bench.results import PointResult

# A relay like chatservice/bench/peers/minimal.py that mistreats the one hundredth line
# it relays (well past the calibration lines), and only towards the first
# other client that connected: that receiver must be the only one to see a
# fault.
FAULTY_SERVER = textwrap.dedent(
    """
    import sys

    from twisted.internet import reactor
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import LineReceiver

    FAULT = sys.argv[2]
    NTH = 100


    class Relay(LineReceiver):
        delimiter = b"\\n"

        def connectionMade(self):
            self.factory.clients.append(self)

        def connectionLost(self, reason):
            self.factory.clients.remove(self)

        def lineReceived(self, line):
            self.factory.relayed += 1
            data = line + b"\\n"
            first = True
            for client in self.factory.clients:
                if client is self:
                    continue
                if first and self.factory.relayed == NTH:
                    if FAULT == "drop":
                        first = False
                        continue
                    if FAULT == "duplicate":
                        client.transport.write(data)
                    elif FAULT == "corrupt":
                        # Same length, one filler byte changed.
                        data = data[:-5] + b"A" + data[-4:]
                    elif FAULT == "truncate":
                        data = data[:-5] + data[-4:]
                client.transport.write(data)
                if first:
                    data = line + b"\\n"
                first = False


    factory = Factory.forProtocol(Relay)
    factory.clients = []
    factory.relayed = 0
    port = reactor.listenTCP(int(sys.argv[1]), factory, interface="127.0.0.1")
    print("listening on", port.getHost().port, flush=True)
    reactor.run()
    """
)

TINY = Options(seconds=0.5, drain=3.0, processes=1, window=50, timeout=60.0)


# Tiny runs that check every byte (--checksum).
CHECKSUMMED = Options(
    seconds=0.5,
    drain=3.0,
    processes=1,
    window=50,
    timeout=60.0,
    checksum=True,
)


class FaultyServerTests(SynchronousTestCase):
    """
    Each fault of the faulty relay is reported, and only that fault.
    """

    def run_against(self, fault: str, options: Options = TINY) -> PointResult:
        directory = tempfile.mkdtemp(prefix="chat-bench-test-")
        self.addCleanup(shutil.rmtree, directory, True)
        script = Path(directory) / "faulty.py"
        script.write_text(FAULTY_SERVER)
        command = [sys.executable, str(script), "{port}", fault]
        with launched(command, fault) as server:
            result = run_point(server, receivers=3, senders=1, options=options)
        # The measurement itself happened.
        self.assertGreater(result.lines_sent, 100)
        self.assertEqual(result.expected, 3 * result.lines_sent)
        self.assertGreater(result.latency_samples, 0)
        self.assertEqual(result.disconnected, 0)
        return result

    def test_dropped_line(self) -> None:
        """
        One line not delivered to one receiver is one lost line, and nothing
        else.
        """
        result = self.run_against("drop")
        self.assertEqual(
            (result.lost, result.duplicates, result.corrupt), (1, 0, 0), result
        )
        self.assertEqual(result.received, result.expected - 1)
        self.assertFalse(result.ok)

    def test_duplicated_line(self) -> None:
        """
        One line delivered twice to one receiver is one duplicate, and
        nothing else.
        """
        result = self.run_against("duplicate")
        self.assertEqual(
            (result.lost, result.duplicates, result.corrupt), (0, 1, 0), result
        )
        self.assertEqual(result.received, result.expected + 1)
        self.assertFalse(result.ok)

    def test_corrupted_line(self) -> None:
        """
        With C{--checksum}, one byte of one delivered line changed (its
        length unchanged) is reported as corrupt, though the line is very
        unlikely to be the one sampled.
        """
        result = self.run_against("corrupt", CHECKSUMMED)
        self.assertGreaterEqual(result.corrupt, 1, result)
        self.assertEqual((result.lost, result.duplicates), (0, 0), result)
        self.assertFalse(result.ok)

    def test_truncated_line(self) -> None:
        """
        Without C{--checksum}, a line one byte short is caught by the byte
        count.
        """
        result = self.run_against("truncate")
        self.assertGreaterEqual(result.corrupt, 1, result)
        self.assertEqual((result.lost, result.duplicates), (0, 0), result)
        self.assertFalse(result.ok)

    def test_no_fault(self) -> None:
        """
        The same relay with no fault (the fault's name matches none) is
        reported clean, with C{--checksum} too.
        """
        result = self.run_against("none", CHECKSUMMED)
        self.assertEqual(
            (result.lost, result.duplicates, result.corrupt, result.reordered),
            (0, 0, 0, 0),
            result,
        )
        self.assertTrue(result.ok, result)


class CorrectServerTests(SynchronousTestCase):
    """
    Against correct servers, nothing is lost, repeated or garbled, with
    several generator processes and senders.
    """

    def check_clean(self, result: PointResult) -> None:
        self.assertEqual(
            (
                result.lost,
                result.duplicates,
                result.corrupt,
                result.reordered,
                result.disconnected,
                result.noise,
            ),
            (0, 0, 0, 0, 0, 0),
            result,
        )
        self.assertTrue(result.ok, result)
        self.assertGreater(result.deliveries, 0)
        self.assertGreater(result.lines_sent, 0)
        self.assertGreater(result.latency_samples, 0)
        assert result.latency_p50_ms is not None
        assert result.latency_p99_ms is not None
        assert result.latency_max_ms is not None
        self.assertLessEqual(result.latency_p50_ms, result.latency_p99_ms)
        # Percentiles come from 2%-wide buckets.
        self.assertLessEqual(result.latency_p99_ms, result.latency_max_ms * 1.03)
        self.assertIsNotNone(result.server_peak_rss_kib)
        self.assertIsNotNone(result.server_cpu_pct)

    def test_minimal_peer(self) -> None:
        """
        The minimal peer delivers every line as sent: payload and C{\\n}.
        """
        options = Options(seconds=0.5, drain=3.0, processes=2, timeout=60.0)
        with launched(peer_command(MINIMAL_PEER), "minimal") as server:
            result = run_point(server, receivers=4, senders=2, options=options)
        self.check_clean(result)
        self.assertEqual(result.expected, result.lines_sent * (4 + 1))
        self.assertIn("b'' + payload + b'\\n'", result.delivered_form)

    def test_ours(self) -> None:
        """
        Our server, as C{chat-bench} starts it by default, delivers every
        line as C{[lobby] <guestN> payload\\r\\n}, and does so at a paced
        rate too.
        """
        options = Options(
            seconds=0.5, drain=3.0, processes=2, timeout=60.0, rate=2000.0
        )
        with launched(ours_command(), "ours") as server:
            result = run_point(server, receivers=4, senders=2, options=options)
        self.check_clean(result)
        self.assertIn("b'[lobby] <guest", result.delivered_form)
        self.assertIn("> ' + payload + b'\\r\\n'", result.delivered_form)
        # Paced: about 2000 lines a second in all, never more.
        self.assertLessEqual(result.lines_sent, 1000 + 2)
