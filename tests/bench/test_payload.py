"""
Tests for L{chatservice.bench.payload}: the lines the senders say, and how
a delivered one is read back.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chatservice.bench import payload
from chatservice.bench.payload import MIN_SIZE


class PayloadTests(SynchronousTestCase):
    def test_payload(self) -> None:
        """
        A payload is C{size - 1} bytes ending in the one C{|} of the line.
        """
        for size in (MIN_SIZE, 64, 200):
            fills = payload.fills_for(size)
            data = payload.payload(3, 12345, 678, fills)
            self.assertEqual(len(data) + 1, size)
            self.assertEqual(data.count(b"|"), 1)
            self.assertTrue(data.endswith(b"|"))

    def test_lines(self) -> None:
        """
        L{payload.lines}, the senders' unrolled loop, says exactly the
        payloads of L{payload.payload}, each with a newline.
        """
        fills = payload.fills_for(64)
        self.assertEqual(
            payload.lines(7, 14, 40, 0xABCDEF, fills),
            b"".join(
                payload.payload(7, seq, 0xABCDEF, fills) + b"\n"
                for seq in range(14, 40)
            ),
        )
        self.assertEqual(payload.lines(7, 5, 5, 0, fills), b"")

    def test_read_framed(self) -> None:
        """
        A payload is found inside whatever the server framed it with, and
        its sender, sequence number and send time are read from it.
        """
        fills = payload.fills_for(64)
        body = payload.payload(2, 99, 12345, fills)
        line = b"[lobby] <guest1> " + body + b"\r\n"
        self.assertEqual(
            payload.read(line, len(body), fills),
            (17, 17 + len(body) - 1, 2, 99, 12345),
        )

    def test_read_rejects(self) -> None:
        """
        A line without a whole payload, or with one that is not exactly
        what its sender said, is not read.
        """
        fills = payload.fills_for(64)
        body = payload.payload(2, 99, 12345, fills)
        length = len(body)
        garbled = body[:30] + b"A" + body[31:]
        for line in [
            b"",
            b"no marker\n",
            body[1:] + b"\n",
            garbled + b"\n",
            b"zzzz" + body[4:] + b"\n",
        ]:
            self.assertIsNone(payload.read(line, length, fills), line)
