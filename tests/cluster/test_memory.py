"""
The in-memory backplane (L{MemoryHub}, L{MemoryBackplane}) on a
L{Clock}: the same scenarios as the Redis backplane's tests, so that tests
of the cluster's logic built on it can trust it to behave as Redis does.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatservice.cluster.backplane import Timers
from chatservice.cluster.memory import MemoryBackplane, MemoryHub
from tests.support.cluster import Recorder

TIMERS = Timers(heartbeat=1.0, dead_after=5.0, lease=15.0, fence_margin=5.0)


class MemoryBackplaneTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = MemoryHub(self.clock, window=50)

    def node(
        self, name: str, queue_max: int = 10_000
    ) -> tuple[MemoryBackplane, Recorder]:
        plane = MemoryBackplane(self.hub, name, TIMERS, queue_max=queue_max)
        listener = Recorder()
        self.successResultOf(plane.start(listener))
        self.addCleanup(lambda: self.successResultOf(plane.stop()))
        return plane, listener

    def turn(self) -> None:
        """Let what is due now run, as the reactor's next turns would."""
        self.clock.advance(0)

    # The log

    def test_same_order_everywhere(self) -> None:
        """
        Two nodes publishing interleaved both receive every batch, their own
        included, once, in one order with consecutive sequence numbers.
        """
        a, la = self.node("a")
        b, lb = self.node("b")
        for i in range(5):
            a.publish(b"a%d" % i)
            b.publish(b"b%d" % i)
            if i % 2:
                self.turn()
        self.turn()
        self.assertEqual(la.batches, lb.batches)
        self.assertEqual([x.seq for x in la.batches], list(range(1, 11)))
        self.assertEqual(
            la.data(), [b"%s%d" % (n, i) for i in range(5) for n in (b"a", b"b")]
        )
        self.assertEqual({x.node for x in la.batches}, {"a", "b"})
        self.assertEqual((a.stats.published, a.stats.received), (5, 10))

    def test_own_batches_come_back_later(self) -> None:
        """A node's own batch reaches it through the log, not at once."""
        a, la = self.node("a")
        a.publish(b"hello")
        self.assertEqual(la.batches, [])
        self.turn()
        self.assertEqual(la.data(), [b"hello"])
        self.assertEqual(la.batches[0].node, "a")
        self.assertEqual(la.batches[0].epoch, a.epoch)

    def test_cut_recovers_from_window(self) -> None:
        """
        A node cut off while another publishes gets the batches it missed
        from the window when it is back, in order, none twice; what it
        published meanwhile waited and goes out after.
        """
        a, la = self.node("a")
        b, lb = self.node("b")
        b.publish(b"1")
        self.turn()
        a.cut()
        b.publish(b"2")
        b.publish(b"3")
        a.publish(b"from a")
        self.turn()
        a.mend()
        self.turn()
        b.publish(b"4")
        self.turn()
        self.assertEqual(la.data(), [b"1", b"2", b"3", b"from a", b"4"])
        self.assertEqual(la.batches, lb.batches)
        # The catch-up on mending read its own queued batch too.
        self.assertEqual(a.stats.recovered, 3)
        self.assertEqual(a.stats.reconnects, 1)
        self.assertEqual(la.missed_counts, [])

    def test_cut_past_window(self) -> None:
        """What the window no longer holds is reported missed, once."""
        a, la = self.node("a")
        b, _ = self.node("b")
        a.cut()
        for i in range(60):
            b.publish(b"%d" % i)
        self.turn()
        a.mend()
        self.turn()
        self.assertEqual(la.missed_counts, [10])
        self.assertEqual(la.data(), [b"%d" % i for i in range(10, 60)])

    def test_queue_overflow(self) -> None:
        """
        While cut off, batches wait in a bounded queue: what overflows is
        counted and logged; the rest go out in order once back.
        """
        a, la = self.node("a", queue_max=2)
        a.cut()
        for data in (b"1", b"2", b"3"):
            a.publish(data)
        self.assertEqual(a.stats.dropped, 1)
        a.mend()
        self.turn()
        self.assertEqual(la.data(), [b"1", b"2"])

    # The epoch

    def test_restart_resets(self) -> None:
        """
        The hub losing its data is a new epoch: every node is told once,
        and the log goes on from 1 in it.
        """
        a, la = self.node("a")
        b, lb = self.node("b")
        a.publish(b"before")
        self.turn()
        old = a.epoch
        self.hub.restart()
        self.turn()
        self.assertNotEqual(a.epoch, old)
        self.assertEqual(la.resets, [a.epoch])
        self.assertEqual(lb.resets, [a.epoch])
        self.assertEqual((a.stats.resets, b.stats.resets), (1, 1))
        b.publish(b"after")
        self.turn()
        self.assertEqual(la.data(), [b"before", b"after"])
        self.assertEqual(la.batches[-1].seq, 1)
        self.assertEqual(la.batches, lb.batches)

    def test_restart_others_assert_first(self) -> None:
        """
        What another node published in the new epoch before this one
        noticed (its claims asserted again, a batch of its own) is not
        skipped: the new epoch is read from its start. A batch published
        before the node noticed goes out after what its reset() publishes.
        """
        a, la = self.node("a")
        b, lb = self.node("b")
        la.on_reset = lambda epoch: a.publish(b"a again")
        lb.on_reset = lambda epoch: b.publish(b"b again")
        self.hub.restart()
        b.publish(b"b line")  # b notices here, a on its next turn
        self.turn()
        expected = [b"b again", b"b line", b"a again"]
        self.assertEqual(lb.data(), expected)
        self.assertEqual(la.data(), expected)
        self.assertEqual(la.batches, lb.batches)
        self.assertEqual(la.missed_counts, [])

    # Claims

    def test_claim_race(self) -> None:
        """Two nodes, one key: exactly one gets it."""
        a, _ = self.node("a")
        b, _ = self.node("b")
        got = [
            self.successResultOf(a.claim("nick", "s1")),
            self.successResultOf(b.claim("nick", "s2")),
        ]
        self.assertEqual(got, [True, False])
        # The holder may claim again; another session of its node may not.
        self.assertTrue(self.successResultOf(a.claim("nick", "s1")))
        self.assertFalse(self.successResultOf(a.claim("nick", "s3")))

    def test_force(self) -> None:
        """
        A forced claim takes the key; the node that held it learns at its
        next renewal that it lost it.
        """
        a, la = self.node("a")
        b, _ = self.node("b")
        self.assertTrue(self.successResultOf(a.claim("nick", "s1")))
        self.assertTrue(self.successResultOf(b.claim("nick", "s2", force=True)))
        self.assertEqual(self.hub.holder("nick"), "s2")
        self.clock.advance(TIMERS.renew_every)
        self.assertEqual(la.lost_claims, [["nick"]])
        self.assertEqual(a.stats.claims_lost, 1)

    def test_release_compares(self) -> None:
        """Release frees a key only for its holder."""
        a, _ = self.node("a")
        b, _ = self.node("b")
        self.assertTrue(self.successResultOf(a.claim("nick", "s1")))
        b.release("nick", "s2")
        a.release("nick", "s9")
        self.assertFalse(self.successResultOf(b.claim("nick", "s2")))
        a.release("nick", "s1")
        self.assertTrue(self.successResultOf(b.claim("nick", "s2")))

    def test_renewal_keeps_and_loses(self) -> None:
        """
        Renewal keeps a claim past its lease; a claim gone behind the node's
        back is reported lost at the next renewal.
        """
        a, la = self.node("a")
        b, _ = self.node("b")
        self.assertTrue(self.successResultOf(a.claim("kept", "s1")))
        self.assertTrue(self.successResultOf(a.claim("gone", "s2")))
        self.clock.pump([TIMERS.renew_every] * 6)  # twice the lease
        self.assertFalse(self.successResultOf(b.claim("kept", "x")))
        del self.hub.claims["gone"]
        self.clock.advance(TIMERS.renew_every)
        self.assertEqual(la.lost_claims, [["gone"]])
        self.assertGreater(a.stats.renewals, 6)

    # Liveness

    def test_node_death(self) -> None:
        """
        A node that stops beating is announced by exactly one survivor, and
        its claims are freed.
        """
        a, la = self.node("a")
        b, lb = self.node("b")
        c, lc = self.node("c")
        self.assertTrue(self.successResultOf(a.claim("nick", "s1")))
        self.assertEqual(self.successResultOf(b.live_nodes()), ["a", "b", "c"])
        a.crash()
        self.clock.pump([TIMERS.heartbeat] * 8)
        self.assertEqual(sorted(lb.lost_nodes + lc.lost_nodes), ["a"])
        self.assertEqual(la.lost_nodes, [])
        self.assertTrue(self.successResultOf(c.claim("nick", "s3")))
        self.assertEqual(self.successResultOf(b.live_nodes()), ["b", "c"])
        self.assertEqual(b.stats.nodes, {"b", "c"})

    def test_everyone_paused(self) -> None:
        """
        After a pause of everyone (the machine, say) longer than dead_after,
        nobody is announced lost: a node judges the others only once it has
        been beating all along itself.
        """
        a, la = self.node("a")
        _b, lb = self.node("b")
        self.clock.pump([TIMERS.heartbeat] * 3)
        self.clock.advance(3 * TIMERS.dead_after)
        self.clock.pump([TIMERS.heartbeat] * 8)
        self.assertEqual(la.lost_nodes + lb.lost_nodes, [])
        self.assertEqual(a.stats.nodes, {"a", "b"})

    def test_paused_node_judges_nobody_at_once(self) -> None:
        """
        A node back from a pause does not reap a node that died meanwhile
        with its first beat, but with the next ones, as any survivor would.
        """
        _a, la = self.node("a")
        b, _lb = self.node("b")
        self.clock.pump([TIMERS.heartbeat] * 3)
        b.crash()
        self.clock.advance(3 * TIMERS.dead_after)
        self.assertEqual(la.lost_nodes, [])
        self.clock.pump([TIMERS.heartbeat] * 2)
        self.assertEqual(la.lost_nodes, ["b"])

    def test_fenced_once(self) -> None:
        """
        A node cut off for longer than fence_after is fenced once and
        forgets its claims; back again, it beats and renews as before.
        """
        a, la = self.node("a")
        self.assertTrue(self.successResultOf(a.claim("nick", "s1")))
        a.cut()
        self.clock.pump([TIMERS.heartbeat] * int(TIMERS.fence_after))
        self.assertEqual(la.fences, 0)
        self.clock.pump([TIMERS.heartbeat] * 20)
        self.assertEqual(la.fences, 1)
        a.mend()
        self.clock.pump([TIMERS.heartbeat] * 10)
        self.assertEqual(la.fences, 1)
        # Its claims are forgotten: not renewed, not reported lost.
        self.assertEqual(la.lost_claims, [])
        self.assertIsNone(self.hub.holder("nick"))
