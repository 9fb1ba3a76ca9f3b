"""
A backplane in one process: several nodes' L{MemoryBackplane}s share one
L{MemoryHub}, which plays the part of Redis. For tests of the cluster's
logic, driven by a L{twisted.internet.task.Clock}; the faults Redis can
have are methods here (L{MemoryBackplane.cut}, L{MemoryHub.restart}), and so
is a node's death (L{MemoryBackplane.crash}).

Delivery is never synchronous: a published batch reaches subscribers on a
later call of the scheduler, as a real network's would.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from chatservice.cluster.backplane import BackplaneStats, Batch, Listener, Timers
from chatservice.cluster.order import InOrder

log = Logger()

WINDOW = 1000


@dataclass
class _Claim:
    holder: str
    node: str
    expires: float


class MemoryHub:
    """
    The shared state: the log and its window, claims, heartbeats.

    @ivar window: the latest batches of the log, as Redis's stream keeps
        them.
    """

    def __init__(self, clock: IReactorTime, window: int = WINDOW) -> None:
        self.clock = clock
        self.epoch = uuid.uuid4().hex[:12]
        self.seq = 0
        self.window: deque[Batch] = deque(maxlen=window)
        self.claims: dict[str, _Claim] = {}
        self.beats: dict[str, float] = {}
        self.reaped: set[str] = set()
        self.planes: list[MemoryBackplane] = []
        # Whether claims are answered a turn later (as over a network).
        self.claim_latency = False
        self.calls = 0

    def append(self, node: str, data: bytes) -> Batch:
        self.calls += 1
        self.seq += 1
        batch = Batch(self.epoch, self.seq, node, data)
        self.window.append(batch)
        for plane in list(self.planes):
            if plane.connected:
                self.clock.callLater(0, plane._live, batch)
        return batch

    def after(self, epoch: str, seq: int) -> list[Batch]:
        self.calls += 1
        if epoch != self.epoch:
            return []
        return [b for b in self.window if b.seq > seq]

    def restart(self) -> None:
        """Lose everything, as a Redis restarted without persistence does."""
        self.epoch = uuid.uuid4().hex[:12]
        self.seq = 0
        self.window.clear()
        self.claims.clear()
        self.beats.clear()
        self.reaped.clear()
        for plane in list(self.planes):
            if plane.connected:
                self.clock.callLater(0, plane._notice_epoch)

    def holder(self, key: str) -> str | None:
        claim = self.claims.get(key)
        if claim is None or claim.expires <= self.clock.seconds():
            return None
        return claim.holder


class MemoryBackplane:
    """One node's backplane on a L{MemoryHub}."""

    def __init__(
        self,
        hub: MemoryHub,
        node: str,
        timers: Timers | None = None,
        queue_max: int = 10_000,
    ) -> None:
        self.hub = hub
        self.node = node
        self.epoch = ""
        self.timers = Timers() if timers is None else timers
        self.stats = BackplaneStats()
        self.connected = False
        self.listener: Listener | None = None
        self._order = InOrder(self._batch, self._fetch, self._missed, self.stats)
        self._queue: deque[bytes] = deque()
        self._queue_max = queue_max
        self._held: dict[str, str] = {}
        # Claims asked for while cut off: made once mended.
        self._parked: list[Callable[[], object]] = []
        self._beat = LoopingCall(self._heartbeat)
        self._beat.clock = hub.clock
        self._renew = LoopingCall(self._renew_claims)
        self._renew.clock = hub.clock
        self._reached = 0.0
        self._fenced = False
        self._dropped = 0

    # Backplane

    def start(self, listener: Listener) -> Deferred[None]:
        self.listener = listener
        self.hub.planes.append(self)
        self.connected = True
        self.epoch = self.hub.epoch
        self._order.begin(self.epoch, self.hub.seq)
        self._reached = self.hub.clock.seconds()
        self._beat.start(self.timers.heartbeat)
        self._renew.start(self.timers.renew_every, now=False)
        return succeed(None)

    def stop(self) -> Deferred[None]:
        for loop in (self._beat, self._renew):
            if loop.running:
                loop.stop()
        if self.connected:
            for key, holder in list(self._held.items()):
                self.release(key, holder)
            self.hub.beats.pop(self.node, None)
        if self in self.hub.planes:
            self.hub.planes.remove(self)
        self.connected = False
        return succeed(None)

    def publish(self, data: bytes) -> None:
        if not self.connected:
            if len(self._queue) >= self._queue_max:
                self.stats.dropped += 1
                self._dropped += 1
                if self._dropped == 1:
                    log.warn("The cluster log's queue is full: dropping batches")
                return
            self._queue.append(data)
            return
        # As Redis's script refuses a batch of an epoch that is over: the
        # node takes in the new epoch (and reset() publishes what it holds)
        # before this batch goes into it.
        self._notice_epoch()
        self.stats.published += 1
        self.hub.append(self.node, data)

    def claim(self, key: str, holder: str, force: bool = False) -> Deferred[bool]:
        if not self.connected:
            if self.listener is None or self not in self.hub.planes:
                return succeed(False)
            # As Redis's does: wait for the hub, at most until fencing.
            d: Deferred[bool] = Deferred()
            self._parked.append(
                lambda: (
                    None
                    if d.called
                    else self.claim(key, holder, force).chainDeferred(d)
                )
            )
            d.addTimeout(self.timers.fence_after, self.hub.clock)
            d.addErrback(lambda _: False)
            return d
        if self.hub.claim_latency:
            # The answer comes a turn later, as Redis's would: claims made
            # in one turn on two nodes race.
            later: Deferred[bool] = Deferred()
            self.hub.clock.callLater(
                0, lambda: self._claim_now(key, holder, force).chainDeferred(later)
            )
            return later
        return self._claim_now(key, holder, force)

    def _claim_now(self, key: str, holder: str, force: bool) -> Deferred[bool]:
        current = self.hub.holder(key)
        if current is not None and current != holder and not force:
            return succeed(False)
        self.hub.claims[key] = _Claim(
            holder, self.node, self.hub.clock.seconds() + self.timers.lease
        )
        self._held[key] = holder
        return succeed(True)

    def release(self, key: str, holder: str) -> None:
        if self._held.get(key) == holder:
            del self._held[key]
        if self.connected and self.hub.holder(key) == holder:
            del self.hub.claims[key]

    def waiting(self) -> int:
        # Appended as published, or queued while cut off.
        return len(self._queue)

    def live_nodes(self) -> Deferred[list[str]]:
        now = self.hub.clock.seconds()
        return succeed(
            sorted(
                node
                for node, beat in self.hub.beats.items()
                if now - beat < self.timers.dead_after
            )
        )

    # Faults

    def cut(self) -> None:
        """Lose the connection to the hub: nothing arrives, nothing leaves."""
        self.connected = False

    def crash(self) -> None:
        """
        Die as a killed process does: stop beating and renewing and drop the
        connection, giving nothing up; the others find out by the silence.
        """
        for loop in (self._beat, self._renew):
            if loop.running:
                loop.stop()
        self.connected = False
        if self in self.hub.planes:
            self.hub.planes.remove(self)

    def mend(self) -> None:
        """Connect again: publish what waited, and catch up on the log."""
        self.connected = True
        parked, self._parked = self._parked, []
        for again in parked:
            again()
        self.stats.reconnects += 1
        self._reached = self.hub.clock.seconds()
        self._fenced = False
        self._notice_epoch()
        if self._dropped:
            log.warn(
                "Dropped {count} batches while the cluster log was away",
                count=self._dropped,
            )
            self._dropped = 0
        while self._queue:
            self.publish(self._queue.popleft())
        if self.listener is not None:
            self.listener.drained()
        self._order.catch_up()

    # Inside

    def _live(self, batch: Batch) -> None:
        if self.connected:
            self._order.offer(batch)

    def _fetch(self, epoch: str, after: int) -> Deferred[list[Batch]]:
        return succeed(self.hub.after(epoch, after))

    def _batch(self, batch: Batch) -> None:
        assert self.listener is not None
        self.listener.batch(batch)

    def _missed(self, count: int) -> None:
        assert self.listener is not None
        self.listener.missed(count)

    def _notice_epoch(self) -> None:
        """
        If the hub began a new epoch, take it in: the whole of the new
        epoch is wanted, from its first batch, since other nodes may have
        published in it (what they hold, asserted again) before this node
        noticed; then tell the listener, and read what the window holds.
        """
        if not self.connected or self.hub.epoch == self.epoch:
            return
        assert self.listener is not None
        self.epoch = self.hub.epoch
        self.stats.resets += 1
        self._order.begin(self.epoch, 0)
        self.listener.reset(self.epoch)
        self._order.catch_up()

    def _heartbeat(self) -> None:
        now = self.hub.clock.seconds()
        if not self.connected:
            if now - self._reached > self.timers.fence_after and not self._fenced:
                self._fence()
            return
        self._reached = now
        self._fenced = False
        # As in Redis: only a node that has been beating all along judges
        # the others.
        last = self.hub.beats.get(self.node)
        steady = last is not None and now - last < self.timers.dead_after
        self.hub.beats[self.node] = now
        # Beating again: if this node dies again, it is reaped again.
        self.hub.reaped.discard(self.node)
        self.stats.nodes = {
            n for n, b in self.hub.beats.items() if now - b < self.timers.dead_after
        }
        for node, beat in list(self.hub.beats.items()):
            if not steady or node == self.node or now - beat < self.timers.dead_after:
                continue
            if node in self.hub.reaped:
                continue
            # The reaper's claim: one survivor announces the loss.
            self.hub.reaped.add(node)
            del self.hub.beats[node]
            for key, claim in list(self.hub.claims.items()):
                if claim.node == node:
                    del self.hub.claims[key]
            assert self.listener is not None
            self.listener.node_lost(node)

    def _renew_claims(self) -> None:
        if not self.connected:
            return
        now = self.hub.clock.seconds()
        lost = []
        for key, holder in list(self._held.items()):
            if self.hub.holder(key) == holder:
                self.hub.claims[key].expires = now + self.timers.lease
            else:
                lost.append(key)
                del self._held[key]
        self.stats.renewals += 1
        if lost:
            self.stats.claims_lost += len(lost)
            assert self.listener is not None
            self.listener.claims_lost(lost)

    def _fence(self) -> None:
        """Once per outage: forget the claims and tell the listener."""
        self._fenced = True
        self._held.clear()
        assert self.listener is not None
        self.listener.fenced()
