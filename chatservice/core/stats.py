"""
What the server counts as it runs, as plain numbers.

The counts are kept here, free of any metrics library, so that the hot path
pays one integer addition per event and nothing when nobody scrapes them;
L{chatservice.server.metrics} turns them into Prometheus metrics only when asked.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field


def _one_two_five(first: float, last: float) -> tuple[float, ...]:
    """
    Bucket bounds 1, 2.5 and 5 times each power of ten, from C{first} to
    C{last}: even steps on a log scale, as Prometheus's own defaults.
    """
    bounds = []
    power = 10.0 ** math.floor(math.log10(first))
    while power <= last:
        for step in (1.0, 2.5, 5.0):
            bound = float(f"{step * power:.12g}")
            if first <= bound <= last:
                bounds.append(bound)
        power *= 10
    return tuple(bounds)


# Fan-out of one reactor turn's lines: from ten microseconds (a few members)
# to a second (a stalled server).
FANOUT_BUCKETS = _one_two_five(0.00001, 1.0)

# One group commit of history: a millisecond on a quiet disk, seconds on a
# failing one.
WRITE_BUCKETS = _one_two_five(0.0005, 10.0)


class Histogram:
    """
    Counts of observations per bucket, as Prometheus histograms keep them:
    bucket C{i} counts values at most C{bounds[i]}, and the last counts the
    rest.
    """

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, times: int = 1) -> None:
        """
        Record C{value}, C{times} times over (for a batch of lines that all
        took that long).
        """
        self.counts[bisect_left(self.bounds, value)] += times
        self.sum += value * times
        self.count += times

    def cumulative(self) -> list[tuple[float, int]]:
        """
        Each upper bound, ending with infinity, and how many observations
        were at most that.
        """
        total = 0
        out = []
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


@dataclass(slots=True)
class Stats:
    """
    Counters for one server process, since it started.

    @ivar lines_received: lines read from clients (commands included).
    @ivar deliveries: lines queued for a recipient: a room line said to N
        others counts N.
    @ivar bytes_in: bytes read from clients.
    @ivar bytes_out: bytes written to clients.
    @ivar flood_delayed: lines held back by flood control.
    @ivar sendq_disconnects: clients dropped for not reading.
    @ivar most_members: the most members connected at once (IRC's LUSERS
        tells it).
    @ivar refused: connections refused, by reason.
    @ivar fanout: seconds each line's reactor turn took to fan out.
    @ivar history_writes: seconds each group commit of history took.
    """

    lines_received: int = 0
    deliveries: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    flood_delayed: int = 0
    sendq_disconnects: int = 0
    most_members: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    fanout: Histogram = field(default_factory=lambda: Histogram(FANOUT_BUCKETS))
    history_writes: Histogram = field(default_factory=lambda: Histogram(WRITE_BUCKETS))
