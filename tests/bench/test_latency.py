"""
Tests for L{chatservice.bench.latency}: send and receive times, and the
histogram the percentiles come from.
"""

from __future__ import annotations

import socket
import time

from twisted.trial.unittest import SynchronousTestCase

from chatservice.bench import latency


class PercentileTests(SynchronousTestCase):
    def test_percentiles(self) -> None:
        histogram = [0] * latency.BUCKETS
        for us in [1000] * 98 + [5000, 50000]:
            histogram[latency.bucket(us)] += 1
        p50 = latency.percentile_ms(histogram, 0.5)
        p99 = latency.percentile_ms(histogram, 0.99)
        assert p50 is not None and p99 is not None
        # Buckets are 2% wide.
        self.assertTrue(0.98 < p50 < 1.02, p50)
        self.assertTrue(4.9 < p99 < 5.1, p99)
        self.assertIsNone(latency.percentile_ms([0] * 10, 0.5))


class KernelTimestampTests(SynchronousTestCase):
    """
    Latency is taken from the kernel's receive timestamp when it is there.
    """

    def test_parsed_from_ancillary_data(self) -> None:
        data = latency.TIMESPEC.pack(1_700_000_000, 123_456_789)
        self.assertEqual(
            latency.kernel_rx_us([(socket.SOL_SOCKET, latency.SO_TIMESTAMPNS, data)]),
            (1_700_000_000 * 1_000_000 + 123_456) & latency.TS_MASK,
        )

    def test_absent(self) -> None:
        self.assertIsNone(latency.kernel_rx_us([]))
        self.assertIsNone(latency.kernel_rx_us([(socket.SOL_SOCKET, 1, b"")]))

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
        b.setsockopt(socket.SOL_SOCKET, latency.SO_TIMESTAMPNS, 1)
        # Linux turns receive stamping on a moment after the first socket
        # asks for it (a deferred static key), so the first segments may
        # come without one: go on for a bounded time until one has it.
        deadline = time.monotonic() + 5
        stamp = None
        while stamp is None and time.monotonic() < deadline:
            before = latency.now_us()
            a.send(b"x")
            _, ancillary, _, _ = b.recvmsg(1, latency.ANCILLARY_SIZE)
            after = latency.now_us()
            stamp = latency.kernel_rx_us(ancillary)
        assert stamp is not None, "no receive timestamp within 5 s"
        self.assertTrue(before <= stamp <= after, (before, stamp, after))
