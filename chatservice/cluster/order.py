"""
Putting the log back in order: what a node receives live may skip or
repeat batches (a subscription that dropped and came back, a recovery
racing live delivery); what it hands on must be every batch once, in order.

One piece of logic for every backplane: the live path L{InOrder.offer}s
what arrives; a batch ahead of the next one expected is held, and the
missing ones are fetched from the log's window; anything at or below the
last one handed on is a repeat, dropped. What the window no longer holds
is reported, once, and skipped. As Centrifugo's clients do with a
publication offset ahead of theirs, and Synapse's replication with a
stream position it has not seen.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatservice.cluster.backplane import BackplaneStats, Batch

log = Logger()

Fetch = Callable[[str, int], Deferred[list[Batch]]]
"""Fetch C{(epoch, after)}: the window's batches of C{epoch} after C{after}."""


class InOrder:
    """
    Hands batches of one epoch on in order, each once.

    @param deliver: called with each batch, in order.
    @param fetch: reads the log's window after a sequence number.
    @param missed: called with how many batches could not be had.
    @ivar last: the sequence number of the last batch handed on.
    """

    def __init__(
        self,
        deliver: Callable[[Batch], None],
        fetch: Fetch,
        missed: Callable[[int], None],
        stats: BackplaneStats,
    ) -> None:
        self._deliver = deliver
        self._fetch = fetch
        self._missed = missed
        self.stats = stats
        self.epoch = ""
        self.last = 0
        self._held: dict[int, Batch] = {}
        self._fetching = False
        self._again = False

    def begin(self, epoch: str, last: int) -> None:
        """
        Start over in C{epoch}, the log being at C{last}: nothing before it
        is wanted, nothing held is kept.
        """
        self.epoch = epoch
        self.last = last
        self._held.clear()

    def offer(self, batch: Batch) -> None:
        """A batch as it arrived, live or fetched."""
        if batch.epoch != self.epoch or batch.seq <= self.last:
            return
        if batch.seq == self.last + 1 and not self._fetching:
            self._hand_on(batch)
            self._release()
            return
        self._held[batch.seq] = batch
        if not self._fetching:
            self.catch_up()

    def catch_up(self) -> None:
        """
        Read whatever the window holds after the last batch handed on (after
        a reconnect, or a batch that came early), then carry on.
        """
        if self._fetching:
            self._again = True
            return
        self._fetching = True
        epoch, after = self.epoch, self.last
        d = self._fetch(epoch, after)
        d.addCallbacks(
            lambda batches: self._fetched(epoch, after, batches), self._failed
        )

    def _fetched(self, epoch: str, after: int, batches: list[Batch]) -> None:
        self._fetching = False
        # A catch-up asked for while this fetch was out (a resubscription)
        # may need what this answer, read before it, cannot hold.
        again, self._again = self._again, False
        if epoch != self.epoch:
            # Begun anew meanwhile: this answer is of no use, but what was
            # asked since still is.
            if again or self._held:
                self.catch_up()
            return
        batches = sorted(
            (b for b in batches if b.epoch == epoch and b.seq > self.last),
            key=lambda b: b.seq,
        )
        first = batches[0].seq if batches else None
        if self._held:
            lowest = min(self._held)
            first = lowest if first is None else min(first, lowest)
        if not again and first is not None and first > self.last + 1:
            # The window starts after what we need: those are gone. Only an
            # answer read after every held batch was published may say so,
            # hence not when a catch-up came in meanwhile.
            gone = first - self.last - 1
            self.stats.missed += gone
            log.warn(
                "The cluster log no longer holds {count} batches after {last}",
                count=gone,
                last=self.last,
            )
            self._missed(gone)
            self.last = first - 1
        for batch in batches:
            if batch.seq == self.last + 1:
                if batch.seq not in self._held:
                    self.stats.recovered += 1
                self._held.pop(batch.seq, None)
                self._hand_on(batch)
        self._release()
        if again or self._held:
            self.catch_up()

    def _failed(self, failure: Failure) -> None:
        # The service is away; the reconnect will catch up.
        self._fetching = False
        log.info(
            "Could not read the cluster log: {error}", error=failure.getErrorMessage()
        )

    def _release(self) -> None:
        held = self._held
        while held:
            batch = held.pop(self.last + 1, None)
            if batch is None:
                return
            self._hand_on(batch)

    def _hand_on(self, batch: Batch) -> None:
        self.last = batch.seq
        self.stats.received += 1
        try:
            self._deliver(batch)
        except Exception:
            log.failure("Applying batch {seq} failed", seq=batch.seq)
