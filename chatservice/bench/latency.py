"""
When a line was sent and when it was received, and the histogram the
latency percentiles come from.

Both ends use the wall clock in microseconds: every process on the machine
shares it, and it is the clock of the kernel's receive timestamps
(C{SO_TIMESTAMPNS}), which let a receiver count a line as received when it
reached the socket, not when the generator got round to reading it.
"""

from __future__ import annotations

import math
import socket
import struct
import time
from collections.abc import Sequence

# A send time is 48 bits of microseconds: the 12 hex digits of a payload.
TS_MASK = (1 << 48) - 1
ANCILLARY_SIZE = 64

# Linux's SO_TIMESTAMPNS (and SCM_TIMESTAMPNS), which the socket module
# does not name: the kernel stamps each received segment with the time it
# reached the socket.
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("@qq")

# Latency histogram: bucket i holds latencies of about exp(i / 50)
# microseconds (2% wide), up to about an hour.
BUCKETS_PER_E = 50
BUCKETS = 1100


def now_us() -> int:
    """
    Microseconds on the wall clock: the clock the kernel's receive
    timestamps use, and the same in every process.
    """
    return (time.time_ns() // 1000) & TS_MASK


def kernel_rx_us(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """
    The kernel's receive time, in microseconds, from C{recvmsg} ancillary
    data; None if there is none.
    """
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds: int
            nanoseconds: int
            seconds, nanoseconds = TIMESPEC.unpack_from(data)
            return (seconds * 1_000_000 + nanoseconds // 1000) & TS_MASK
    return None


def bucket(us: int) -> int:
    """The histogram bucket of a latency of C{us} microseconds."""
    if us <= 1:
        return 0
    return min(int(math.log(us) * BUCKETS_PER_E), BUCKETS - 1)


def percentile_ms(histogram: Sequence[int], fraction: float) -> float | None:
    """
    The latency, in milliseconds, below which C{fraction} of those counted
    in C{histogram} fall; None if it counts none.
    """
    total = sum(histogram)
    if not total:
        return None
    rank = max(1, math.ceil(total * fraction))
    seen = 0
    for i, n in enumerate(histogram):
        seen += n
        if seen >= rank:
            return math.exp((i + 0.5) / BUCKETS_PER_E) / 1000.0
    return None
