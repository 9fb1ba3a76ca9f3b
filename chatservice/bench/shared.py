"""
The array of counters that every process of a run shares, and one worker's
view of it: the window of lines in flight.

Per sender it holds the lines sent; per worker, the fewest lines any of its
receivers has counted, the lines all its connections have counted, the
connections it has opened, and whether a sender of its waits for the window
to open. A sender may be at most C{--window} lines ahead of the slowest
receiver in any process; whichever worker moves that minimum wakes the
workers whose senders wait for it.
"""

from __future__ import annotations

import contextlib
from multiprocessing.connection import Connection
from typing import Any

from chatservice.bench.connection import NOBODY, Client


def layout(senders: int, workers: int) -> tuple[int, int, int, int, int]:
    """
    Where the counters start in the shared array: the per-worker minimum,
    total, connections opened and blocked flag (per-sender lines sent are
    at 0), and the array's length.
    """
    minimum = senders
    total = minimum + workers
    started = total + workers
    blocked = started + workers
    return minimum, total, started, blocked, blocked + workers


class Window:
    """
    One worker's side of the shared counters.

    The minimum over this worker's receivers is recomputed only when the
    last of the receivers that had exactly that many lines moves on: C{low}
    is that minimum and C{at_low} how many receivers are at it.
    """

    def __init__(
        self,
        index: int,
        senders: int,
        workers: int,
        shared: Any,
        wakers: list[Connection],
        receivers: list[Client],
    ) -> None:
        self.index = index
        self.workers = workers
        self.shared = shared
        self.wakers = wakers
        self.receivers = receivers
        (self.i_min, self.i_total, self.i_started, self.i_blocked, _) = layout(
            senders, workers
        )
        self.low = 0
        self.at_low = 0

    def open(self) -> None:
        """Counting starts: every receiver is at 0."""
        self.low = 0
        self.at_low = len(self.receivers)
        if self.receivers:
            self.shared[self.i_min + self.index] = 0

    def passed(self) -> None:
        """A receiver that was at the minimum has moved on, or closed."""
        self.at_low -= 1
        if not self.at_low:
            self.new_low()

    def new_low(self) -> None:
        """
        Every receiver of this worker has moved past the old minimum: say
        so, and wake the workers whose senders wait for it.
        """
        lines = [c.lines for c in self.receivers if not c.closed]
        self.low = low = min(lines, default=NOBODY)
        self.at_low = lines.count(low)
        shared = self.shared
        shared[self.i_min + self.index] = low
        for w, waker in enumerate(self.wakers):
            if shared[self.i_blocked + w]:
                shared[self.i_blocked + w] = 0
                if w != self.index:
                    with contextlib.suppress(OSError):
                        waker.send_bytes(b"")

    def fewest(self) -> int:
        """The fewest lines any receiver has counted, in any worker."""
        shared = self.shared
        i = self.i_min
        fewest: int = min(shared[i + w] for w in range(self.workers))
        return fewest

    def block(self) -> None:
        """A sender of this worker waits for the receivers: wake it."""
        self.shared[self.i_blocked + self.index] = 1

    def sent(self, sid: int, lines: int) -> None:
        """Sender C{sid} has sent C{lines} lines."""
        self.shared[sid] = lines

    def counted(self, lines: int) -> None:
        """This worker's connections have counted C{lines} lines in all."""
        self.shared[self.i_total + self.index] = lines

    def opened(self) -> None:
        """This worker has opened one more connection."""
        self.shared[self.i_started + self.index] += 1

    def started(self) -> int:
        """Connections every worker has opened."""
        shared = self.shared
        i = self.i_started
        started: int = sum(shared[i + w] for w in range(self.workers))
        return started
