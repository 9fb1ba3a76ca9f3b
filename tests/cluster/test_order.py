"""
L{InOrder}, the one reassembly every backplane uses, in memory: the log's
window is a list, fetches answer at once or when the test says so.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from chatservice.cluster.backplane import BackplaneStats, Batch
from chatservice.cluster.order import InOrder

EPOCH = "e1"


def batch(seq: int, epoch: str = EPOCH) -> Batch:
    return Batch(epoch, seq, "n1", b"%d" % seq)


class Log:
    """
    The log's window, and an L{InOrder} reading it. Fetches answer at once
    unless C{manual}, when they wait in L{pending} for L{answer}.
    """

    def __init__(self, window: list[int] | None = None) -> None:
        self.window = [batch(seq) for seq in window or []]
        self.delivered: list[int] = []
        self.missed: list[int] = []
        self.fetches: list[tuple[str, int]] = []
        self.manual = False
        self.failing = False
        self.pending: list[tuple[Deferred[list[Batch]], list[Batch]]] = []
        self.stats = BackplaneStats()
        self.order = InOrder(
            lambda b: self.delivered.append(b.seq),
            self.fetch,
            self.missed.append,
            self.stats,
        )
        self.order.begin(EPOCH, 0)

    def fetch(self, epoch: str, after: int) -> Deferred[list[Batch]]:
        self.fetches.append((epoch, after))
        if self.failing:
            return fail(ConnectionError("Redis is away"))
        answer = [b for b in self.window if b.epoch == epoch and b.seq > after]
        if not self.manual:
            return succeed(answer)
        d: Deferred[list[Batch]] = Deferred()
        self.pending.append((d, answer))
        return d

    def answer(self) -> None:
        """Answer the oldest fetch with the window as it was when asked."""
        d, answer = self.pending.pop(0)
        d.callback(answer)

    def offer(self, *seqs: int) -> None:
        for seq in seqs:
            self.order.offer(batch(seq))


class InOrderTests(SynchronousTestCase):
    def test_in_order(self) -> None:
        """Batches that arrive in order are handed on at once, nothing fetched."""
        log = Log()
        log.offer(1, 2, 3)
        self.assertEqual(log.delivered, [1, 2, 3])
        self.assertEqual(log.fetches, [])
        self.assertEqual((log.stats.received, log.stats.recovered), (3, 0))
        self.assertEqual(log.order.last, 3)

    def test_duplicates_dropped(self) -> None:
        """A batch at or below the last one handed on is a repeat."""
        log = Log()
        log.offer(1, 2, 2, 1, 3, 3)
        self.assertEqual(log.delivered, [1, 2, 3])
        self.assertEqual(log.stats.received, 3)

    def test_other_epoch_dropped(self) -> None:
        """A batch of another epoch than the one begun is not handed on."""
        log = Log()
        log.order.offer(batch(1, epoch="old"))
        self.assertEqual(log.delivered, [])

    def test_begin_skips_before(self) -> None:
        """After begin(epoch, last), nothing at or below last is wanted."""
        log = Log()
        log.order.begin(EPOCH, 5)
        log.offer(5, 6)
        self.assertEqual(log.delivered, [6])

    def test_gap_filled_from_window(self) -> None:
        """
        A batch ahead of the next one is held while the missing ones are
        fetched; then all go on in order, the fetched ones counted as
        recovered.
        """
        log = Log(window=[1, 2, 3, 4, 5])
        log.manual = True
        log.offer(1)
        log.offer(4)
        self.assertEqual(log.delivered, [1])
        self.assertEqual(log.fetches, [(EPOCH, 1)])
        log.offer(5)
        self.assertEqual(log.delivered, [1])
        log.answer()
        self.assertEqual(log.delivered, [1, 2, 3, 4, 5])
        self.assertEqual(log.stats.recovered, 2)
        self.assertEqual(log.stats.received, 5)
        self.assertEqual(log.missed, [])
        # Late live copies of the recovered ones are repeats.
        log.offer(2, 3, 6)
        self.assertEqual(log.delivered, [1, 2, 3, 4, 5, 6])

    def test_window_lost_gap(self) -> None:
        """
        What the window no longer holds is reported once, with its count,
        and later batches go on.
        """
        log = Log(window=[4, 5])
        log.offer(1)
        log.offer(5)
        self.assertEqual(log.missed, [2])
        self.assertEqual(log.stats.missed, 2)
        self.assertEqual(log.delivered, [1, 4, 5])
        log.offer(6, 7)
        self.assertEqual(log.delivered, [1, 4, 5, 6, 7])
        self.assertEqual(log.missed, [2])

    def test_window_empty_gap(self) -> None:
        """An empty window: the held batch goes on after the missed ones."""
        log = Log()
        log.offer(3)
        self.assertEqual(log.missed, [2])
        self.assertEqual(log.delivered, [3])

    def test_fetch_failure_then_catch_up(self) -> None:
        """
        A fetch that fails leaves the held batch held; a later catch-up (the
        reconnect's) fills the gap.
        """
        log = Log(window=[1, 2, 3])
        log.failing = True
        log.offer(3)
        self.assertEqual(log.delivered, [])
        log.failing = False
        log.order.catch_up()
        self.assertEqual(log.delivered, [1, 2, 3])
        self.assertEqual(log.missed, [])
        self.assertEqual(log.stats.recovered, 2)

    def test_catch_up_reads_after_last(self) -> None:
        """catch_up() with nothing held reads what the window has after last."""
        log = Log(window=[1, 2, 3])
        log.offer(1)
        log.order.catch_up()
        self.assertEqual(log.fetches, [(EPOCH, 1)])
        self.assertEqual(log.delivered, [1, 2, 3])

    def test_catch_up_during_fetch(self) -> None:
        """
        A catch-up asked for while a fetch is out (a resubscription) fetches
        again: the first answer was read before the batches the
        resubscription missed, so it may not call them gone.
        """
        log = Log(window=[1])
        log.manual = True
        log.offer(1)
        log.order.catch_up()  # answer: nothing after 1
        # Meanwhile 2, 3 and 4 are published, 2 and 3 lost live ...
        log.window += [batch(2), batch(3), batch(4)]
        log.order.catch_up()  # ... the resubscription asks again
        log.offer(4)
        log.answer()
        self.assertEqual(log.missed, [])
        self.assertEqual(log.delivered, [1])
        log.answer()
        self.assertEqual(log.delivered, [1, 2, 3, 4])
        self.assertEqual(log.missed, [])
        self.assertEqual(log.pending, [])

    def test_begin_during_fetch(self) -> None:
        """
        An answer for an epoch begun over meanwhile is dropped, and a
        catch-up asked for in the new epoch is still made.
        """
        log = Log(window=[1, 2])
        log.manual = True
        log.offer(2)
        log.order.begin("e2", 0)
        log.order.catch_up()
        log.window = [batch(1, "e2")]
        log.answer()
        self.assertEqual(log.delivered, [])
        self.assertEqual(log.fetches[-1], ("e2", 0))
        log.answer()
        self.assertEqual(log.delivered, [1])
        self.assertEqual(log.missed, [])

    def test_deliver_failure_logged(self) -> None:
        """A listener that raises is logged; later batches still go on."""
        stats = BackplaneStats()
        seen: list[int] = []

        def deliver(b: Batch) -> None:
            seen.append(b.seq)
            if b.seq == 1:
                raise ValueError("bad batch")

        order = InOrder(deliver, lambda e, a: succeed([]), lambda n: None, stats)
        order.begin(EPOCH, 0)
        order.offer(batch(1))
        order.offer(batch(2))
        self.assertEqual(seen, [1, 2])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
