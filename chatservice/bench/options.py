"""
How C{chat-bench} loads the server at every point: the options that are
the same for every run of an invocation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


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
    # "line", or "irc" (see chatservice.bench.irc), and with "irc" the
    # lines each sender says before it joins.
    protocol: str = "line"
    irc_send: tuple[str, ...] = ()

    def deadline(self, connections: int) -> float:
        """Seconds a whole run may take, set-up included."""
        if self.timeout is not None:
            return self.timeout
        return 60.0 + connections / 50 + self.seconds + self.drain + 15.0
