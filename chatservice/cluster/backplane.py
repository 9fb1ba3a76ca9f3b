"""
The backplane: what the processes of one chat share, behind one interface.

A node (one C{twistd chat} process) keeps a replica of the whole chat: its
own members and everyone else's. What changes the chat is appended to one
cluster log, and every node, the author included, applies the log in its
order, so all nodes show every room the same way (see
C{docs/architecture.md}, "Several processes"). The backplane gives a node:

  - B{the log}: L{Backplane.publish} appends one node's batch for a reactor
    turn; L{Listener.batch} hands every batch, from every node, to every
    node, in the log's order, each exactly once. Gaps (a subscription that
    dropped) are filled from a short window of the log before later batches
    are handed on; what the window no longer holds is reported with
    L{Listener.missed}.
  - B{an epoch}: the name of the log's current life. If the service behind
    it lost its data (Redis restarted empty), the epoch changes and
    L{Listener.reset} tells the node to assert again what it holds.
  - B{claims}: short leases on names (nicknames), unique cluster-wide. A
    node renews its claims itself; claims it lost are reported with
    L{Listener.claims_lost}, and a node cut off for longer than its lease is
    told it is L{Listener.fenced}.
  - B{liveness}: each node beats; when one stops, exactly one survivor is
    told L{Listener.node_lost} and announces it in the log, and the dead
    node's claims are freed.

Implementations: L{chatservice.cluster.memory} (in one process, for tests)
and L{chatservice.cluster.redis} (Redis).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Protocol

from twisted.internet.defer import Deferred


def default_node_id() -> str:
    """The host's name and this process's id: unique on a host."""
    host = "".join(
        c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname()
    )
    return f"{host[:48]}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Batch:
    """
    One node's entries of one reactor turn, as the log ordered them.

    @ivar epoch: the life of the log the batch belongs to.
    @ivar seq: its place in the log: 1, 2, 3, ... within an epoch, with no
        gaps and no repeats.
    @ivar node: the node that published it.
    @ivar data: the entries, as L{chatservice.cluster.codec} encoded them.
    """

    epoch: str
    seq: int
    node: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Timers:
    """
    How often a node beats and renews, and how long silence may last.

    @ivar heartbeat: seconds between a node's heartbeats.
    @ivar dead_after: a node silent this long is dead to the others.
    @ivar lease: how long a claim lasts unless renewed; renewed every third.
    @ivar fence_margin: a node that could not renew for C{lease -
        fence_margin} seconds fences itself, before anyone may take its
        names.
    """

    heartbeat: float = 1.0
    dead_after: float = 5.0
    lease: float = 15.0
    fence_margin: float = 5.0

    @property
    def renew_every(self) -> float:
        return self.lease / 3

    @property
    def fence_after(self) -> float:
        return self.lease - self.fence_margin


@dataclass(slots=True)
class BackplaneStats:
    """
    What a node counts of its backplane, for its metrics.

    @ivar published: batches this node published.
    @ivar received: batches handed to the listener (its own included).
    @ivar recovered: batches that arrived late and were filled in from the
        log's window, in order.
    @ivar missed: batches the window no longer held when asked.
    @ivar round_trip: the latest round trip to the service, in seconds.
    @ivar renewals: claim renewals done.
    @ivar claims_lost: claims found lost at renewal.
    @ivar reconnects: connections to the service made again after a loss.
    @ivar resets: epoch changes seen.
    @ivar dropped: batches dropped because the queue of batches waiting for
        the service was full.
    """

    published: int = 0
    received: int = 0
    recovered: int = 0
    missed: int = 0
    round_trip: float = 0.0
    renewals: int = 0
    claims_lost: int = 0
    reconnects: int = 0
    resets: int = 0
    dropped: int = 0
    nodes: set[str] = field(default_factory=set)


class Listener(Protocol):
    """What a backplane tells the node it serves."""

    def batch(self, batch: Batch) -> None:
        """
        The next batch of the log (this node's own included), in order.
        """

    def missed(self, count: int) -> None:
        """
        C{count} batches of the log could not be recovered: some lines are
        missing here.
        """

    def reset(self, epoch: str) -> None:
        """
        The log began anew under C{epoch} (the service lost its data):
        claim and announce again what this node holds.
        """

    def claims_lost(self, keys: list[str]) -> None:
        """
        These claims of this node's are held by nobody or by another now:
        whoever used them here must give them up.
        """

    def node_lost(self, node: str) -> None:
        """
        C{node} stopped beating, and this node is the one to announce it
        (its claims are freed already).
        """

    def fenced(self) -> None:
        """
        This node could not reach the service for longer than its lease:
        others may hold its names now. It must drop its users.
        """


class Backplane(Protocol):
    """
    The log, claims and liveness one node uses (see the module docstring).

    @ivar node: this node's name, unique in the cluster.
    @ivar epoch: the log's epoch, once started.
    @ivar stats: the counts for metrics.
    """

    node: str
    epoch: str
    stats: BackplaneStats

    def start(self, listener: Listener) -> Deferred[None]:
        """
        Connect, subscribe and begin beating; fires once batches published
        from now on will reach C{listener}.
        """

    def stop(self) -> Deferred[None]:
        """
        Stop beating, give up every claim, and disconnect. First, within a
        bound, what this node published is appended and handed back to its
        listener, so that the node applies its own last batches too.
        """

    def publish(self, data: bytes) -> None:
        """
        Append C{data} to the log, after everything this node published
        before. While the service is unreachable, batches wait in a bounded
        queue; what overflows is counted in L{BackplaneStats.dropped}.
        """

    def claim(self, key: str, holder: str, force: bool = False) -> Deferred[bool]:
        """
        Take C{key} for C{holder} (a session of this node) if nobody holds
        it, or if C{holder} does already: fires True if taken. With
        C{force}, take it from whoever holds it (the owner of a registered
        nickname reclaiming it): fires True.
        """

    def release(self, key: str, holder: str) -> None:
        """
        Give up C{key}, if C{holder} holds it.
        """

    def live_nodes(self) -> Deferred[list[str]]:
        """The nodes beating now, this one included."""
