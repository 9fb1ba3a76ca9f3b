"""
Reading what the server delivers: the generator's hot path.

Every read goes into one shared buffer. While calibrating, every line is
parsed to learn how the server frames each sender's lines. While counting,
a read costs a C{count(b"\\n")} and the parse of its last complete line
only (its latency, its order among that sender's lines, and whether it is
exactly what that sender sent, framed as calibrated); with C{--checksum},
also a count of the C{|} markers and a byte sum over everything read.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chatservice.bench import payload
from chatservice.bench.connection import COUNTING, DISCARDING, Client
from chatservice.bench.latency import (
    ANCILLARY_SIZE,
    BUCKETS,
    TS_MASK,
    bucket,
    kernel_rx_us,
    now_us,
)
from chatservice.bench.messages import WorkerSpec
from chatservice.bench.shared import Window

RECV_BUFFER = 1 << 20


class Reader:
    """
    What a worker reads, and the latencies and checks it takes from it.
    """

    def __init__(
        self, spec: WorkerSpec, window: Window, close: Callable[[Client], None]
    ) -> None:
        self.window = window
        self.close = close
        self.senders = spec.senders
        self.checksum = spec.checksum
        self.kernel_time = spec.kernel_time
        self.fills = payload.fills_for(spec.size)
        self.plen = spec.size - 1
        self.buf = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buf)
        # The kernel's receive time of the last read, when it gives one.
        self.rx_us: int | None = None
        self.histogram = [0] * BUCKETS
        self.max_latency_us = 0
        # Reads while counting.
        self.reads = 0
        # With --idle: connections heard from, bytes, and the last read.
        self.heard = 0
        self.rx_bytes = 0
        self.last_rx = 0

    def read(self, client: Client) -> None:
        """Read what C{client}'s socket has, and count or learn from it."""
        buf = self.buf
        tail = client.tail
        t = len(tail)
        if t:
            buf[:t] = tail
        try:
            if self.kernel_time:
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
            window = self.window
            if before == window.low and client.sid < 0 and client.lines > before:
                window.passed()
            if self.checksum:
                client.marks += buf.count(b"|", t, end)
                client.sum += payload.byte_sum(self.view[t:end])
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
        """
        If C{line} is another sender's calibration line, learn from it what
        the server puts before and after that sender's payloads, and which
        round C{client} has heard from it.
        """
        found = payload.read(line, self.plen, self.fills)
        if found is None:
            return
        k, j, sid, seq, ts = found
        if seq or sid >= self.senders or sid == client.sid:
            return
        client.prefix[sid] = line[:k]
        client.eol[sid] = line[j + 1 :]
        if ts > client.cal_rounds[sid]:
            client.cal_rounds[sid] = ts
            client.cal_round = min(client.cal_rounds)

    def sample(self, client: Client, line: bytes) -> None:
        """Check one delivered line whole; time it; check its order."""
        found = payload.read(line, self.plen, self.fills)
        if found is None:
            client.bad_samples += 1
            return
        k, j, sid, seq, ts = found
        if (
            sid >= self.senders
            or sid == client.sid
            or line[:k] != client.prefix[sid]
            or line[j + 1 :] != client.eol[sid]
        ):
            client.bad_samples += 1
            return
        received = self.rx_us if self.rx_us is not None else now_us()
        latency = (received - ts) & TS_MASK
        self.histogram[bucket(latency)] += 1
        if latency > self.max_latency_us:
            self.max_latency_us = latency
        if seq <= client.last_seq[sid]:
            client.reordered += seq < client.last_seq[sid]
        else:
            client.last_seq[sid] = seq
