"""
Which node each connection of a run goes to, when the server is several
nodes (C{--nodes}, or several C{--target}s): round-robin, receivers and
senders each on their own count, so that every node has its share of both
and a sender's lines reach receivers on every node, most of them on nodes
other than its own. Or, with C{apart}, every sender on the first node and
the receivers on the others: a node that only receives, fed by the
backplane alone.
"""

from __future__ import annotations

from typing import NamedTuple


class Spread(NamedTuple):
    """The node of every receiver and of every sender, by their numbers."""

    receivers: tuple[int, ...]
    senders: tuple[int, ...]

    def for_worker(
        self, worker: int, workers: int
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """
        The nodes of C{worker}'s receivers, in the order it opens them (a
        run deals receiver C{r} to worker C{r % workers}), and of every
        sender by id (a worker hears every sender, and needs to know which
        of their lines crossed nodes).
        """
        return self.receivers[worker::workers], self.senders

    def totals(self) -> tuple[int, ...]:
        """The connections on each node, receivers and senders."""
        nodes = max((*self.receivers, *self.senders), default=-1) + 1
        return tuple(
            self.receivers.count(n) + self.senders.count(n) for n in range(nodes)
        )

    def crossing(self) -> float:
        """
        The share of deliveries that cross nodes when every sender says
        as many lines: each line reaches every receiver and every other
        sender.
        """
        total = crossed = 0
        for s, node in enumerate(self.senders):
            heard_by = [*self.receivers, *self.senders[:s], *self.senders[s + 1 :]]
            total += len(heard_by)
            crossed += sum(n != node for n in heard_by)
        return crossed / total if total else 0.0


def spread(receivers: int, senders: int, nodes: int, apart: bool = False) -> Spread:
    """
    Receiver C{r} on node C{r % nodes}, sender C{s} on node C{s % nodes}:
    with two nodes, half of every line's deliveries cross nodes. C{apart}:
    every sender on node 0, receiver C{r} on node C{1 + r % (nodes - 1)},
    so that every line a receiver hears crossed nodes.
    """
    if nodes < 1:
        raise ValueError(f"{nodes} nodes")
    if apart:
        if nodes < 2:
            raise ValueError("senders apart from receivers take two nodes")
        return Spread(
            tuple(1 + r % (nodes - 1) for r in range(receivers)),
            (0,) * senders,
        )
    return Spread(
        tuple(r % nodes for r in range(receivers)),
        tuple(s % nodes for s in range(senders)),
    )
