"""
Several installed C{twistd chat} processes forming one chat over Redis and
PostgreSQL (issue 15), end to end: real nodes on loopback with short timers
(L{tests.support.nodes}), clients on real sockets, and the failures an
operator meets: a node killed or stopped, the Redis subscription cut, Redis
and PostgreSQL restarted.

Each test has a cluster of its own (a Redis key prefix and a PostgreSQL
schema nobody else uses). Nothing sleeps to let things happen: every wait
is for a line (or a Redis subscription), bounded by a deadline.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from twisted.trial.unittest import SynchronousTestCase

from tests.support.helpers import TIMEOUT, SocketClient
from tests.support.nodes import (
    LEASE,
    Cluster,
    PrivatePostgres,
    PrivateRedis,
    User,
    redis_command,
    settle,
    subscribers,
    wait_for,
)

# How long the others may take to see a lost node's users quit: it is lost
# after --dead-after (1 s) without a beat, then a reaper announces it.
NODE_LOST_WITHIN = 6.0
# How long chat may take to come back after Redis or PostgreSQL did: the
# node's reconnection backs off up to 2 s.
RECOVERY_WITHIN = 15.0


def spoken(room: str, *nicks: str) -> re.Pattern[str]:
    """A room line said in C{room} by one of C{nicks}."""
    return re.compile(
        rf"^\[{re.escape(room)}\] <(?:{'|'.join(map(re.escape, nicks))})> "
    )


class ClusterTests(SynchronousTestCase):
    def three(
        self, *nicks: str, options: Sequence[str] = ()
    ) -> tuple[Cluster, list[User]]:
        """
        Three nodes (with C{options}), and a user on each named C{nicks}
        (the first on n1), settled: every node knows every one of them.
        """
        cluster = Cluster(self, 3, options=options)
        users = [cluster.user(n, nick) for n, nick in enumerate(nicks, 1)]
        settle(users)
        return cluster, users

    def test_linesAndPrivateMessagesCrossNodes(self) -> None:
        """
        Room lines, actions, joins and private messages reach users on
        every node; /who on any node sees members of every node.
        """
        _, (alice, bob, carol) = self.three("alice", "bob", "carol")
        alice.send("hello from n1")
        for user in (bob, carol):
            user.expect("[lobby] <alice> hello from n1")
        bob.send("/me waves from n2")
        for user in (alice, carol):
            user.expect("[lobby] * bob waves from n2")
        alice.send("/msg carol psst, carol")
        carol.expect("*alice* psst, carol")
        carol.send("/msg bob and you, bob")
        bob.expect("*carol* and you, bob")

        alice.ask("/join python", "*** Now talking in python (1 member).")
        # n2 knows alice is in python before bob joins: bob is no operator.
        settle([alice, bob])
        bob.ask("/join python", re.compile(r"^\*\*\* Now talking in python "))
        alice.expect("[python] --> bob joined")
        bob.send("in python")
        alice.expect("[python] <bob> in python")
        self.assertEqual(
            carol.ask("/who python", re.compile(r"^\*\*\* python ")),
            "*** python (2 members): @alice, bob",
        )
        self.assertNotIn("[python] <bob> in python", carol.lines)

    def test_ircAndLineClientsOnTwoNodes(self) -> None:
        """
        A line user on n2 and an IRC user on n1 share a room: NAMES lists
        both, and lines and private messages cross both ways.
        """
        cluster = Cluster(self, 2, irc=[1])
        bob = cluster.user(2, "bob")
        irc = SocketClient(self, cluster[1].irc_port)
        irc.send(b"NICK alice\r\nUSER alice 0 * :Alice\r\n")
        irc.read_until(lambda line: b" 001 alice " in line)
        # Wait until n1 knows bob (and so that he is in the lobby), asking
        # again while it does not: alice then joins the room bob made.
        deadline = time.monotonic() + TIMEOUT
        while True:
            irc.send(b"WHOIS bob\r\n")
            reply = irc.read_until(
                lambda line: re.search(rb" (311|401) ", line) is not None
            )
            if b" 311 " in reply:
                break
            self.assertLess(time.monotonic(), deadline, "n1 never knew bob")
        irc.send(b"JOIN #lobby\r\n")
        names = irc.read_until(lambda line: b" 353 alice " in line)
        self.assertEqual(sorted(names.split(b":")[-1].split()), [b"@bob", b"alice"])
        irc.read_until(lambda line: b" 366 alice #lobby " in line)
        bob.expect("[lobby] --> alice joined")
        bob.send("hello, irc", "/msg alice privately")
        self.assertEqual(
            irc.read_until(lambda line: b"PRIVMSG #lobby" in line),
            b":bob!bob@chatservice PRIVMSG #lobby :hello, irc\r\n",
        )
        self.assertEqual(
            irc.read_until(lambda line: b"PRIVMSG" in line),
            b":bob!bob@chatservice PRIVMSG alice :privately\r\n",
        )
        irc.send(b"PRIVMSG #lobby :hello, line\r\nPRIVMSG bob :back\r\n")
        bob.expect("[lobby] <alice> hello, line")
        bob.expect("*alice* back")

    def test_floodFromTwoNodesOneOrder(self) -> None:
        """
        Two users on two nodes say 200 lines each as fast as they can: every
        member on every node sees the same sequence of the 400, each
        sender's lines in the order said, none lost, none twice.
        """
        cluster, users = self.three(
            "alice", "bob", "carol", options=["--flood-rate", "0"]
        )
        dave, erin = cluster.user(1, "dave"), cluster.user(2, "erin")
        alice, bob, carol = users
        everyone = [*users, dave, erin]
        settle(everyone)
        count = 200
        said_by_alice = [f"a {i}" for i in range(count)]
        said_by_bob = [f"b {i}" for i in range(count)]
        for start in range(0, count, 50):
            # In bursts, both at once, so that both nodes publish together.
            alice.send(*said_by_alice[start : start + 50])
            bob.send(*said_by_bob[start : start + 50])
        flood = re.compile(r"^\[lobby\] <(alice|bob)> [ab] \d+$")
        seen = {
            user.nick: user.collect(flood, 2 * count) for user in (carol, dave, erin)
        }
        sequence = seen["carol"]
        self.assertEqual(seen["dave"], sequence)
        self.assertEqual(seen["erin"], sequence)
        by_alice = [line for line in sequence if "<alice>" in line]
        by_bob = [line for line in sequence if "<bob>" in line]
        self.assertEqual(by_alice, [f"[lobby] <alice> {x}" for x in said_by_alice])
        self.assertEqual(by_bob, [f"[lobby] <bob> {x}" for x in said_by_bob])
        # Each sender sees the other's lines, in the same order.
        self.assertEqual(alice.collect(flood, count), by_bob)
        self.assertEqual(bob.collect(flood, count), by_alice)
        # And nothing more of them came after.
        settle(everyone)
        for user in everyone:
            got = [line for line in user.lines if flood.match(line)]
            self.assertEqual(
                got,
                by_bob if user is alice else by_alice if user is bob else sequence,
            )

    def test_nickRace(self) -> None:
        """
        Nine users on three nodes ask for one nickname at once: exactly one
        gets it, the eight others are told it is taken, and every node
        agrees on who has it.
        """
        cluster = Cluster(self, 3)
        users = [cluster.user(1 + i % 3, f"racer{i}") for i in range(9)]
        for user in users:
            user.send("/nick prize")
        won = re.compile(r"^\*\*\* You are now known as prize\.$")
        lost = re.compile(r"^!!! The nickname prize is taken\.$")
        outcomes = [
            user.expect(lambda line: bool(won.match(line) or lost.match(line)))
            for user in users
        ]
        winners = [
            user for user, line in zip(users, outcomes, strict=True) if won.match(line)
        ]
        self.assertEqual(len(winners), 1, outcomes)
        [winner] = winners
        winner.nick = "prize"
        settle(users)
        for user in users:
            if user is not winner:
                user.send(f"/msg prize from {user.nick}")
        got = winner.collect(re.compile(r"^\*racer\d\* from racer\d$"), 8)
        self.assertEqual(
            sorted(got),
            sorted(f"*{u.nick}* from {u.nick}" for u in users if u is not winner),
        )

    def test_historyAndAccountAcrossNodes(self) -> None:
        """
        An account registered on n1, and lines said there, are n2's too: its
        user logs in with the password and joining the room replays the
        lines; so does a node started afterwards.
        """
        cluster = Cluster(self, 2)
        alice = cluster.user(1, "alice")
        alice.ask(
            "/register correct-horse",
            "*** alice is registered to you, and you are logged in.",
        )
        alice.ask("/join annals", "*** Now talking in annals (1 member).")
        alice.send("first line", "/me writes it down", "last line")
        alice.ask("/quit", "*** Goodbye.")

        bob = cluster.user(2)
        bob.send("/login alice wrong-password")
        bob.expect("!!! Wrong password for alice.")
        bob.send("/login alice correct-horse")
        bob.expect("*** You are now known as alice.")
        bob.expect("*** You are logged in as alice.")
        bob.nick = "alice"
        replay = re.compile(
            r"^\[annals\] \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\) (?:<alice>|\* alice) "
        )
        expected = ["<alice> first line", "* alice writes it down", "<alice> last line"]

        def replayed(user: User) -> list[str]:
            user.send("/join annals")
            user.expect(re.compile(r"^\*\*\* Now talking in annals"))
            lines = user.collect(replay, 3)
            user.expect("*** End of history of annals.")
            return [line.split(") ", 1)[1] for line in lines]

        self.assertEqual(replayed(bob), expected)
        # A node that never saw the lines reads them from the database.
        cluster.add()
        carol = cluster.user(3, "carol")
        self.assertEqual(replayed(carol), expected)
        carol.send("/nick alice")
        carol.expect(re.compile(r"^!!! The nickname alice is (taken|registered)"))

    def test_killedNodeTakesOnlyItsUsers(self) -> None:
        """
        C{kill -9} of n1: the users of n2 and n3 stay connected, see alice
        quit with "node lost" within seconds, and her nickname is free
        again within the lease.
        """
        cluster, (alice, bob, carol) = self.three("alice", "bob", "carol")
        cluster[1].kill()
        killed = time.monotonic()
        alice.closed()
        for user in (bob, carol):
            user.expect(
                re.compile(r"^\[lobby\] <-- alice quit \(.*node lost.*\)$"),
                NODE_LOST_WITHIN,
            )
        bob.send("still here")
        carol.expect("[lobby] <bob> still here")
        # The name is free again: the survivor that announced the loss freed
        # the dead node's names first.
        bob.rename("alice")
        self.assertLess(time.monotonic() - killed, NODE_LOST_WITHIN + LEASE)
        carol.expect("[lobby] --- bob is now known as alice")
        self.assertTrue(bob.connected())
        self.assertTrue(carol.connected())

    def test_stoppedNodeFencesItself(self) -> None:
        """
        n1 stopped (SIGSTOP) for longer than its lease: the others see alice
        quit and her name is free; when n1 runs again it drops alice rather
        than let two users hold one name, and the others are not disturbed.
        """
        cluster, (alice, bob, carol) = self.three("alice", "bob", "carol")
        cluster[1].pause()
        for user in (bob, carol):
            user.expect(
                re.compile(r"^\[lobby\] <-- alice quit \(.*node lost.*\)$"),
                NODE_LOST_WITHIN,
            )
        bob.rename("alice", LEASE + 1)
        carol.expect("[lobby] --- bob is now known as alice")
        # No sleep: bob holding the name shows that the cluster no longer
        # counts n1's lease (its reaper freed it), which is what n1 must
        # learn when it runs again, however long it was stopped.
        cluster[1].resume()
        rest = alice.closed(NODE_LOST_WITHIN)
        self.assertTrue(
            any(
                re.match(r"^!!! You were disconnected by n1 \((cut off|node lost)", x)
                for x in rest
            ),
            rest,
        )
        # n1's dropping of alice is no news to the others: the new alice
        # (bob) keeps her name and her room.
        carol.send("after the fence")
        bob.expect("[lobby] <carol> after the fence")
        who = carol.ask("/who lobby", re.compile(r"^\*\*\* lobby "))
        # Operator marks and order aside: bob may have made the lobby on n2.
        names = who.split(": ", 1)[1].replace("@", "").split(", ")
        self.assertEqual(sorted(names), ["alice", "carol"])
        # n1 is a node again: a new user there meets everyone.
        dave = cluster.user(1, "dave")
        settle([dave, bob, carol])

    def test_pubsubKilledLosesNothing(self) -> None:
        """
        The nodes' Redis subscriptions are cut (C{CLIENT KILL TYPE pubsub})
        twice while lines flow: every node fills the gap from the stream,
        and every user sees every line once, in order.
        """
        cluster, (alice, bob, carol) = self.three(
            "alice", "bob", "carol", options=["--flood-rate", "0"]
        )
        channel = cluster.prefix + "log"
        said = [f"line {i}" for i in range(300)]
        for start in range(0, 300, 100):
            alice.send(*said[start : start + 50])
            if start < 200:
                # The three nodes' subscriptions, and none of another test's.
                self.assertEqual(subscribers(cluster.redis, channel), 3)
                killed = redis_command(
                    cluster.redis, "CLIENT", "KILL", "TYPE", "pubsub"
                )
                self.assertEqual(killed, 3)
            alice.send(*said[start + 50 : start + 100])
            wait_for(
                lambda: subscribers(cluster.redis, channel) == 3,
                "subscribed again",
                RECOVERY_WITHIN,
            )
        expected = [f"[lobby] <alice> {text}" for text in said]
        for user in (bob, carol):
            self.assertEqual(
                user.collect(spoken("lobby", "alice"), len(said), RECOVERY_WITHIN),
                expected,
            )
        # Nothing came twice afterwards either.
        settle([alice, bob, carol])
        for user in (bob, carol):
            self.assertEqual(
                [line for line in user.lines if line.startswith("[lobby] <alice>")],
                expected,
            )

    def test_redisRestarted(self) -> None:
        """
        Redis restarts empty: the nodes notice, claim their users' names
        again, and chat goes on across them.
        """
        redis = PrivateRedis(self)
        cluster = Cluster(self, 2, redis=redis.endpoint)
        alice, bob = cluster.user(1, "alice"), cluster.user(2, "bob")
        settle([alice, bob])
        redis.kill()
        redis.start()
        for node in cluster.nodes:
            node.logged("The cluster log began anew", RECOVERY_WITHIN)
        alice.send("after the restart")
        bob.expect("[lobby] <alice> after the restart", RECOVERY_WITHIN)
        bob.send("/msg alice got it")
        alice.expect("*bob* got it", RECOVERY_WITHIN)
        # The names were claimed again in the new Redis.
        for nick in ("alice", "bob"):
            key = f"{cluster.prefix}claim:{nick}"
            self.assertEqual(redis_command(redis.endpoint, "EXISTS", key), 1)

    def test_postgresStoppedAndStarted(self) -> None:
        """
        PostgreSQL stops for a while: chat goes on, the lines said
        meanwhile wait in the history's queue, and once it is back they
        are stored: a node started afterwards replays them.
        """
        postgres = PrivatePostgres(self)
        cluster = Cluster(self, 2, database=postgres.url)
        alice, bob = cluster.user(1, "alice"), cluster.user(2, "bob")
        alice.ask("/join notes", "*** Now talking in notes (1 member).")
        bob.ask("/join notes", re.compile(r"^\*\*\* Now talking in notes"))
        alice.expect("[notes] --> bob joined")
        alice.send("before the outage")
        bob.expect("[notes] <alice> before the outage")
        postgres.stop()
        during = [f"during the outage {i}" for i in range(5)]
        alice.send(*during)
        bob.collect(spoken("notes", "alice"), len(during))
        bob.send("from n2 during the outage")
        alice.expect("[notes] <bob> from n2 during the outage")
        postgres.start()
        alice.send("after the outage")
        bob.expect("[notes] <alice> after the outage")
        # The nodes stop (writing what waits), and a fresh one replays.
        for node in cluster.nodes:
            node.stop()
        cluster.add()
        carol = cluster.user(3, "carol")
        carol.send("/join notes")
        carol.expect(re.compile(r"^\*\*\* Now talking in notes"))
        replay = carol.collect(re.compile(r"^\[notes\] \("), 8, RECOVERY_WITHIN)
        replayed = [line.split(") ", 1)[1] for line in replay]
        by_alice = [
            "<alice> before the outage",
            *(f"<alice> {text}" for text in during),
            "<alice> after the outage",
        ]
        # Each node writes the lines said on it: across nodes, the stored
        # order is the order their writes reached PostgreSQL again.
        self.assertEqual(
            sorted(replayed), sorted([*by_alice, "<bob> from n2 during the outage"])
        )
        self.assertEqual([x for x in replayed if x.startswith("<alice>")], by_alice)
