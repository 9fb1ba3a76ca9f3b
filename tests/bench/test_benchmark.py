"""
Tests for L{chatservice.benchmark} (C{chat-bench}): that a run against a
server which loses, repeats or garbles a line says so, and that a run
against a correct one finds nothing wrong.

The servers are small Twisted relays run as subprocesses on 127.0.0.1, like
the minimal peer in C{bench/peers/}, but with one deliberate fault. Runs are
tiny (a few receivers, one sender, half a second), so that each test takes
a couple of seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import socket
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from chatservice import benchmark
from chatservice.benchmark import (
    MIN_SIZE,
    Options,
    PointResult,
    launched,
    ours_command,
    run_point,
)

REPO = Path(__file__).parents[2]
MINIMAL_PEER = REPO / "bench" / "peers" / "minimal.py"

# A relay like bench/peers/minimal.py that mistreats the one hundredth line
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
        with launched(benchmark.peer_command(MINIMAL_PEER), "minimal") as server:
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


class HelperTests(SynchronousTestCase):
    def test_payload(self) -> None:
        """
        A payload is C{size - 1} bytes ending in the one C{|} of the line.
        """
        for size in (MIN_SIZE, 64, 200):
            fills = benchmark.fills_for(size)
            data = benchmark.payload(3, 12345, 678, fills)
            self.assertEqual(len(data) + 1, size)
            self.assertEqual(data.count(b"|"), 1)
            self.assertTrue(data.endswith(b"|"))

    def test_points(self) -> None:
        self.assertEqual(
            benchmark.parse_points("1000x10, 100x5,10x1"),
            [(1000, 10), (100, 5), (10, 1)],
        )

    def test_port_pattern(self) -> None:
        """
        The port is found in what our server and the minimal peer print.
        """
        for text, port in [
            (
                b"[chatservice.server.tap#info] Chat server listening on "
                b"IPv4Address(type='TCP', host='127.0.0.1', port=40213)",
                b"40213",
            ),
            (b"listening on 5555\n", b"5555"),
            (b"server ready, port 6000\n", b"6000"),
        ]:
            match = benchmark.PORT_PATTERN.search(text)
            assert match is not None
            self.assertEqual(match.group(1), port)

    def test_percentiles(self) -> None:
        histogram = [0] * benchmark.BUCKETS
        for us in [1000] * 98 + [5000, 50000]:
            histogram[benchmark.bucket(us)] += 1
        p50 = benchmark.percentile_ms(histogram, 0.5)
        p99 = benchmark.percentile_ms(histogram, 0.99)
        assert p50 is not None and p99 is not None
        # Buckets are 2% wide.
        self.assertTrue(0.98 < p50 < 1.02, p50)
        self.assertTrue(4.9 < p99 < 5.1, p99)
        self.assertIsNone(benchmark.percentile_ms([0] * 10, 0.5))


class KernelTimestampTests(SynchronousTestCase):
    """
    Latency is taken from the kernel's receive timestamp when it is there.
    """

    def test_parsed_from_ancillary_data(self) -> None:
        data = benchmark.TIMESPEC.pack(1_700_000_000, 123_456_789)
        self.assertEqual(
            benchmark.kernel_rx_us(
                [(socket.SOL_SOCKET, benchmark.SO_TIMESTAMPNS, data)]
            ),
            (1_700_000_000 * 1_000_000 + 123_456) & benchmark.TS_MASK,
        )

    def test_absent(self) -> None:
        self.assertIsNone(benchmark.kernel_rx_us([]))
        self.assertIsNone(benchmark.kernel_rx_us([(socket.SOL_SOCKET, 1, b"")]))

    def test_real_socket_gets_one(self) -> None:
        """
        On Linux a loopback TCP socket with SO_TIMESTAMPNS set reports the
        time a segment arrived, on the wall clock that senders use.
        """
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        a = socket.create_connection(listener.getsockname(), timeout=5)
        self.addCleanup(a.close)
        b, _ = listener.accept()
        self.addCleanup(b.close)
        b.settimeout(5)
        b.setsockopt(socket.SOL_SOCKET, benchmark.SO_TIMESTAMPNS, 1)
        # Linux turns receive stamping on a moment after the first socket
        # asks for it (a deferred static key), so the first segments may
        # come without one: go on for a bounded time until one has it.
        deadline = time.monotonic() + 5
        stamp = None
        while stamp is None and time.monotonic() < deadline:
            before = benchmark.now_us()
            a.send(b"x")
            _, ancillary, _, _ = b.recvmsg(1, benchmark.ANCILLARY_SIZE)
            after = benchmark.now_us()
            stamp = benchmark.kernel_rx_us(ancillary)
        assert stamp is not None, "no receive timestamp within 5 s"
        self.assertTrue(before <= stamp <= after, (before, stamp, after))


class HistoryModeTests(SynchronousTestCase):
    def test_ours_keeps_history_in_a_file_of_its_own(self) -> None:
        """
        By default the benchmark measures our server as it runs by default,
        history on, with the database in the run's own directory rather
        than wherever chat-bench was started.
        """
        command = ours_command()
        database = command[command.index("--database") + 1]
        self.assertEqual(database, "{workdir}/chat.sqlite3")

    def test_history_compares_on_and_off(self) -> None:
        """
        C{--history} runs ours with history and with C{--no-history} at each
        point, and both deliver every line.
        """
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = benchmark.main(
                [
                    "--history",
                    "--points",
                    "3x1",
                    "--seconds",
                    "0.5",
                    "--drain",
                    "3",
                    "--rounds",
                    "1",
                    "--processes",
                    "1",
                    "--json",
                ]
            )
        self.assertEqual(status, 0, out.getvalue())
        [point] = json.loads(out.getvalue())["points"]
        [on] = point["ours"]
        [off] = point["peer"]
        self.assertEqual((on["server"], off["server"]), ("ours", "no-history"))
        for run in (on, off):
            self.assertTrue(run["ok"], run)
            self.assertEqual(run["lost"], 0)
            self.assertGreater(run["deliveries"], 0)
