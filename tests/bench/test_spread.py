"""
Tests for L{chatservice.bench.spread}: which node each connection of a run
goes to when the server is several nodes.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chatservice.bench.spread import spread


class SpreadTests(SynchronousTestCase):
    def test_round_robin(self) -> None:
        """
        Receivers and senders are each dealt round-robin over the nodes,
        on their own count, so that every node has its share of both.
        """
        found = spread(5, 3, 2)
        self.assertEqual(found.receivers, (0, 1, 0, 1, 0))
        self.assertEqual(found.senders, (0, 1, 0))

    def test_one_sender_reaches_every_node(self) -> None:
        """
        A point with one sender (C{100x1@1000}) still has receivers on
        every node, half of them on the sender's.
        """
        found = spread(100, 1, 2)
        self.assertEqual(found.senders, (0,))
        self.assertEqual(found.receivers.count(0), 50)
        self.assertEqual(found.receivers.count(1), 50)
        self.assertEqual(found.crossing(), 0.5)

    def test_balanced_senders(self) -> None:
        """C{1000x10} on two nodes: five senders and 500 receivers each."""
        found = spread(1000, 10, 2)
        self.assertEqual(found.senders.count(0), 5)
        self.assertEqual(found.receivers.count(1), 500)

    def test_totals(self) -> None:
        """Each node's connections, receivers and senders, in node order."""
        self.assertEqual(spread(5, 3, 2).totals(), (5, 3))
        self.assertEqual(spread(1000, 10, 2).totals(), (505, 505))

    def test_crossing(self) -> None:
        """
        The share of deliveries that cross nodes counts the senders
        hearing each other: with two senders on two nodes and no
        receivers, every delivery crosses; on one node, none does.
        """
        self.assertEqual(spread(0, 2, 2).crossing(), 1.0)
        self.assertEqual(spread(10, 2, 1).crossing(), 0.0)
        # Three nodes, one receiver and one sender each: each line reaches
        # 3 receivers and 2 senders, 4 of them elsewhere.
        self.assertAlmostEqual(spread(3, 3, 3).crossing(), 4 / 5)

    def test_for_worker(self) -> None:
        """
        A worker's receivers are those a run deals it (receiver C{r} to
        worker C{r % workers}), in that order, and it knows every
        sender's node.
        """
        found = spread(7, 4, 3)
        receivers, senders = found.for_worker(1, 2)
        self.assertEqual(
            receivers, (found.receivers[1], found.receivers[3], found.receivers[5])
        )
        self.assertEqual(receivers, (1, 0, 2))
        self.assertEqual(senders, (0, 1, 2, 0))

    def test_apart(self) -> None:
        """
        Apart, every sender is on the first node and the receivers are
        dealt round-robin over the others: every line a receiver hears
        crossed nodes, and only the senders hear each other at home.
        """
        found = spread(5, 3, 3, apart=True)
        self.assertEqual(found.senders, (0, 0, 0))
        self.assertEqual(found.receivers, (1, 2, 1, 2, 1))
        self.assertEqual(found.totals(), (3, 3, 2))
        # Each line: 5 receivers elsewhere, 2 senders at home.
        self.assertAlmostEqual(found.crossing(), 5 / 7)

    def test_apart_takes_two_nodes(self) -> None:
        with self.assertRaises(ValueError):
            spread(1, 1, 1, apart=True)

    def test_no_nodes(self) -> None:
        with self.assertRaises(ValueError):
            spread(1, 1, 0)
