"""
How C{chat-bench} loads the server at every point: the options that are
the same for every run of an invocation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NamedTuple


class Point(NamedTuple):
    """
    One point of a run: C{receivers} and C{senders} in one room, the
    senders as fast as the window allows or, with a C{rate}, paced at that
    many lines a second in all (C{100x1@1000} on the command line).
    """

    receivers: int
    senders: int
    rate: float | None = None

    def __str__(self) -> str:
        return point_label(self.receivers, self.senders, self.rate)


def point_label(receivers: int, senders: int, rate: float | None) -> str:
    """How tables name a point: C{1000x10}, or C{100x1@1000} if paced."""
    label = f"{receivers}x{senders}"
    return label if rate is None else f"{label}@{rate:g}"


@dataclass(frozen=True)
class Options:
    """How to load the server at every point."""

    size: int = 64
    window: int = 200
    rate: float | None = None
    seconds: float = 10.0
    drain: float = 5.0
    processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    timeout: float | None = None
    checksum: bool = False
    kernel_time: bool = True
    slow: int = 0
    # "line", "irc" (see chatservice.bench.irc) or "ws" (see
    # chatservice.bench.ws), and with "irc" the lines each sender says
    # before it joins.
    protocol: str = "line"
    irc_send: tuple[str, ...] = ()
    # With several nodes: every sender on the first, the receivers on the
    # others (see chatservice.bench.spread).
    apart: bool = False

    def deadline(self, connections: int) -> float:
        """Seconds a whole run may take, set-up included."""
        if self.timeout is not None:
            return self.timeout
        return 60.0 + connections / 50 + self.seconds + self.drain + 15.0
