"""
A L{Listener} for the backplane tests: it records what the backplane tells
it, and can claim or publish from its callbacks as a node would.
"""

from __future__ import annotations

from collections.abc import Callable

from chatservice.cluster.backplane import Batch


class Recorder:
    """
    Every call a backplane makes, in lists a test reads.

    @ivar on_reset: called with the epoch from L{reset}, after recording
        it: what the node would assert again.
    """

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.missed_counts: list[int] = []
        self.resets: list[str] = []
        self.lost_claims: list[list[str]] = []
        self.lost_nodes: list[str] = []
        self.fences = 0
        self.drains = 0
        self.on_reset: Callable[[str], None] | None = None

    def batch(self, batch: Batch) -> None:
        self.batches.append(batch)

    def missed(self, count: int) -> None:
        self.missed_counts.append(count)

    def reset(self, epoch: str) -> None:
        self.resets.append(epoch)
        if self.on_reset is not None:
            self.on_reset(epoch)

    def claims_lost(self, keys: list[str]) -> None:
        self.lost_claims.append(keys)

    def node_lost(self, node: str) -> None:
        self.lost_nodes.append(node)

    def fenced(self) -> None:
        self.fences += 1

    def drained(self) -> None:
        self.drains += 1

    def data(self) -> list[bytes]:
        """The data of the batches received, in order."""
        return [b.data for b in self.batches]
