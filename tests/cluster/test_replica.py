"""
Several nodes, one chat, in memory: each node a line (and IRC) front end on
a chat whose L{Replica} shares one L{MemoryHub}, all on one fake clock.
What a user on one node does must be seen as a single server shows it by
users on every node.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from chatservice.cluster import codec
from chatservice.cluster import replica as replica_module
from chatservice.cluster.backplane import Timers
from chatservice.cluster.memory import MemoryBackplane, MemoryHub
from chatservice.cluster.replica import DELIVERY_HOLD, HOLD_MOST, PACE_FROM, Replica
from chatservice.core import events
from chatservice.core.accounts import Account, Accounts
from chatservice.core.chat import Chat
from chatservice.core.history import History, Kind
from chatservice.frontends.limits import Limits
from tests.support.memory import Connection, GuardedClock, Harness, discard

TIMERS = Timers(heartbeat=1.0, dead_after=3.0, lease=6.0, fence_margin=2.0)


class Cluster:
    """C{n} nodes on one hub and one clock."""

    def __init__(
        self,
        testcase: SynchronousTestCase,
        n: int,
        accounts: Callable[[Chat, dict[str, Account]], Accounts] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.accounts = accounts
        self.limits = limits
        self.clock = GuardedClock()
        self.hub = MemoryHub(self.clock)
        self.nodes: list[Harness] = []
        self.planes: list[MemoryBackplane] = []
        self.replicas: list[Replica] = []
        for i in range(n):
            self.add(f"n{i + 1}")
        testcase.addCleanup(self.stop)

    def add(self, name: str) -> Harness:
        node = Harness(
            self.limits,
            clock=self.clock,
            history=History(clock=self.clock.seconds, persist=True),
            accounts=self.accounts,
        )
        plane = MemoryBackplane(self.hub, name, TIMERS)
        replica = Replica(node.chat, plane, node.accounts, self.clock)
        replica.start()
        self.nodes.append(node)
        self.planes.append(plane)
        self.replicas.append(replica)
        self.settle()
        return node

    def settle(self) -> None:
        """Let every published batch reach every node, and output go out."""
        for _ in range(10):
            self.clock.advance(0)

    def stop(self) -> None:
        for plane in self.planes:
            plane.stop()

    def connect(self, node: int, nick: str) -> Connection:
        connection = self.nodes[node].connect()
        self.settle()
        connection.say(f"/nick {nick}")
        self.settle()
        return connection


class ReplicaTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cluster = Cluster(self, 3)

    def test_room_line_crosses_nodes(self) -> None:
        """
        A line said in the lobby on one node reaches members on the others,
        and the sender sees nothing of its own.
        """
        alice = self.cluster.connect(0, "alice")
        bob = self.cluster.connect(1, "bob")
        carol = self.cluster.connect(2, "carol")
        discard(alice, bob, carol)
        alice.say("hello, cluster")
        self.cluster.settle()
        self.assertEqual(bob.take(), ["[lobby] <alice> hello, cluster"])
        self.assertEqual(carol.take(), ["[lobby] <alice> hello, cluster"])
        self.assertEqual(alice.take(), [])

    def test_one_order(self) -> None:
        """
        Two senders on two nodes flooding one room: every member on every
        node sees the same lines in the same order.
        """
        alice = self.cluster.connect(0, "alice")
        bob = self.cluster.connect(1, "bob")
        carol = self.cluster.connect(2, "carol")
        discard(alice, bob, carol)
        for i in range(20):
            alice.proto.dataReceived(f"a{i}\n".encode())
            bob.proto.dataReceived(f"b{i}\n".encode())
            if i % 3 == 0:
                self.cluster.settle()
        for _ in range(30):
            # The flood limiter lets the rest through.
            self.cluster.clock.advance(1)
            self.cluster.settle()
        seen = [[line.split("> ")[1] for line in c.take()] for c in (alice, bob, carol)]
        # Alice and Bob see each other's, Carol sees everything.
        order = seen[2]
        self.assertEqual(len(order), 40)
        self.assertEqual(seen[0], [t for t in order if t.startswith("b")])
        self.assertEqual(seen[1], [t for t in order if t.startswith("a")])

    def test_joins_and_names(self) -> None:
        """
        A member joining a room on one node is seen joining on the others,
        and listed among its members everywhere.
        """
        alice = self.cluster.connect(0, "alice")
        bob = self.cluster.connect(1, "bob")
        discard(alice, bob)
        alice.say("/join #tea")
        self.cluster.settle()
        bob.say("/join #tea")
        self.cluster.settle()
        self.assertIn("[tea] --> bob joined", "\n".join(alice.take()))
        bob.take()
        bob.say("/who")
        self.cluster.settle()
        who = "\n".join(bob.take())
        self.assertIn("alice", who)
        self.assertIn("bob", who)

    def test_private_message(self) -> None:
        """A private message reaches its addressee on another node."""
        alice = self.cluster.connect(0, "alice")
        bob = self.cluster.connect(2, "bob")
        discard(alice, bob)
        alice.say("/msg bob psst")
        self.cluster.settle()
        self.assertEqual(bob.take(), ["*alice* psst"])

    def test_nick_unique(self) -> None:
        """
        A name held on one node is refused on another; once its holder
        leaves, it is free.
        """
        alice = self.cluster.connect(0, "alice")
        other = self.cluster.connect(1, "other")
        discard(alice, other)
        other.say("/nick alice")
        self.cluster.settle()
        self.assertIn("taken", "\n".join(other.take()))
        self.assertEqual(other.nick, "other")
        alice.say("/quit")
        self.cluster.settle()
        other.say("/nick alice")
        self.cluster.settle()
        self.assertEqual(other.nick, "alice")

    def test_quit_seen(self) -> None:
        """A member quitting on one node is seen to quit on the others."""
        alice = self.cluster.connect(0, "alice")
        bob = self.cluster.connect(1, "bob")
        discard(alice, bob)
        alice.say("/quit bye")
        self.cluster.settle()
        self.assertIn("alice", "\n".join(bob.take()))
        self.assertNotIn("alice", self.cluster.nodes[1].chat.members)

    def test_node_lost(self) -> None:
        """
        A node that stops beating takes its members with it: the others see
        them quit, and their names are free again.
        """
        alice = self.cluster.connect(0, "alice")
        bob = self.cluster.connect(1, "bob")
        discard(alice, bob)
        self.cluster.planes[0].cut()
        for _ in range(5):
            self.cluster.clock.advance(1)
            self.cluster.settle()
        lines = "\n".join(bob.take())
        self.assertIn("alice", lines)
        self.assertIn("node lost", lines)
        self.assertNotIn("alice", self.cluster.nodes[1].chat.members)
        self.assertIsNone(self.cluster.hub.holder("alice"))

    def test_newcomer_node_learns_the_chat(self) -> None:
        """
        A node that starts late learns who is where, and each room's topic,
        from the others' answers to its hello.
        """
        alice = self.cluster.connect(0, "alice")
        alice.say("/join #tea")
        alice.say("/topic Earl Grey only")
        self.cluster.settle()
        late = self.cluster.add("n4")
        dave = late.connect()
        self.cluster.settle()
        dave.say("/join #tea")
        self.cluster.settle()
        lines = "\n".join(dave.take())
        self.assertIn("Earl Grey only", lines)
        self.assertIn("alice", late.chat.members)
        self.assertIn(late.chat.members["alice"], late.chat.rooms["tea"].operators)

    def test_room_rules_hold_everywhere(self) -> None:
        """
        A topic, an operator status and a ban set on one node hold on the
        others: a banned user on another node cannot enter.
        """
        alice = self.cluster.connect(0, "alice")
        bob = self.cluster.connect(1, "bob")
        carol = self.cluster.connect(2, "carol")
        alice.say("/join #tea")
        self.cluster.settle()
        bob.say("/join #tea")
        self.cluster.settle()
        alice.say("/op bob")
        alice.say("/ban carol!*@*")
        alice.say("/topic brewing")
        self.cluster.settle()
        for node in self.cluster.nodes:
            room = node.chat.rooms["tea"]
            self.assertEqual(sorted(m.nick for m in room.operators), ["alice", "bob"])
            self.assertIn("carol!*@*", room.bans)
            assert room.topic is not None
            self.assertEqual(room.topic.text, "brewing")
        discard(carol)
        carol.say("/join #tea")
        self.cluster.settle()
        self.assertIn("banned", "\n".join(carol.take()).lower())

    def test_kick_across_nodes(self) -> None:
        """An operator on one node kicks a member on another: it is out."""
        alice = self.cluster.connect(0, "alice")
        bob = self.cluster.connect(1, "bob")
        alice.say("/join #tea")
        self.cluster.settle()
        bob.say("/join #tea")
        self.cluster.settle()
        discard(alice, bob)
        alice.say("/kick bob enough")
        self.cluster.settle()
        self.assertIn("kicked", "\n".join(bob.take()))
        for node in self.cluster.nodes:
            self.assertNotIn("bob", [m.nick for m in node.chat.rooms["tea"].members])

    def test_history_replayed_on_another_node(self) -> None:
        """Lines said on one node are replayed to who enters on another."""
        alice = self.cluster.connect(0, "alice")
        alice.say("/join #tea")
        alice.say("first")
        alice.say("second")
        self.cluster.settle()
        bob = self.cluster.connect(2, "bob")
        discard(bob)
        bob.say("/join #tea")
        self.cluster.settle()
        lines = "\n".join(bob.take())
        self.assertIn("first", lines)
        self.assertIn("second", lines)
        # Only the node where they were said writes them.
        stored = [
            node.chat.history.unwritten if node.chat.history else None
            for node in self.cluster.nodes
        ]
        self.assertIn("tea", stored[0] or {})
        self.assertEqual((stored[1], stored[2]), ({}, {}))

    def test_nick_race(self) -> None:
        """
        Clients on three nodes ask for one name in the same turn: exactly
        one gets it, the others are told it is taken.
        """
        clients = [self.cluster.connect(i % 3, f"user{i}") for i in range(6)]
        discard(*clients)
        for client in clients:
            client.proto.dataReceived(b"/nick prize\n")
        self.cluster.settle()
        holders = [c for c in clients if c.nick == "prize"]
        self.assertEqual(len(holders), 1)
        for client in clients:
            if client not in holders:
                self.assertIn("taken", "\n".join(client.take()))

    def test_fenced(self) -> None:
        """
        A node cut off from the backplane for longer than its lease drops
        its users, before anyone else may take their names.
        """
        alice = self.cluster.connect(0, "alice")
        discard(alice)
        self.cluster.planes[0].cut()
        for _ in range(6):
            self.cluster.clock.advance(1)
            self.cluster.settle()
        self.assertFalse(alice.connected)
        self.assertIn("cut off", "\n".join(alice.take()))

    def test_fenced_node_back_disturbs_nobody(self) -> None:
        """
        A node cut off long enough to be lost, and to fence itself, comes
        back: the quits it publishes for its users then are old news to the
        others, where someone else may hold the name by now. They do not
        put that someone out of its rooms, nor show a second quit.
        """
        alice = self.cluster.connect(0, "alice")
        bob = self.cluster.connect(1, "bob")
        carol = self.cluster.connect(2, "carol")
        discard(alice, bob, carol)
        self.cluster.planes[0].cut()
        for _ in range(6):
            self.cluster.clock.advance(1)
            self.cluster.settle()
        self.assertFalse(alice.connected)
        self.assertEqual(carol.take(), ["[lobby] <-- alice quit (node lost)"])
        bob.say("/nick alice")
        self.cluster.settle()
        self.assertEqual(carol.take(), ["[lobby] --- bob is now known as alice"])
        discard(bob)
        self.cluster.planes[0].mend()
        self.cluster.clock.advance(1)
        self.cluster.settle()
        carol.say("still here")
        self.cluster.settle()
        self.assertEqual(bob.take(), ["[lobby] <carol> still here"])
        self.assertEqual(carol.take(), [])
        for node in self.cluster.nodes[1:]:
            self.assertEqual(
                sorted(m.nick for m in node.chat.rooms["lobby"].members),
                ["alice", "carol"],
            )

    def test_kill_remote(self) -> None:
        """
        A server operator's kill of a member on another node closes that
        member's connection there.
        """
        alice = self.cluster.connect(0, "alice")
        bob = self.cluster.connect(1, "bob")
        discard(alice, bob)
        chat = self.cluster.nodes[0].chat
        chat.dismiss(chat.find("bob"), events.Killed("alice", "spam"), "Killed")
        self.cluster.settle()
        self.assertFalse(bob.connected)
        self.assertIn("spam", "\n".join(bob.take()))
        self.assertIn("bob", "\n".join(alice.take()))

    def test_redis_restart(self) -> None:
        """
        The backplane loses everything (an epoch change): nodes claim their
        names again and chat goes on.
        """
        alice = self.cluster.connect(0, "alice")
        bob = self.cluster.connect(1, "bob")
        discard(alice, bob)
        self.cluster.hub.restart()
        self.cluster.settle()
        self.assertEqual(self.cluster.hub.holder("alice"), "n1/1")
        alice.say("still here")
        self.cluster.settle()
        self.assertEqual(bob.take(), ["[lobby] <alice> still here"])

    def test_irc_sees_the_cluster(self) -> None:
        """
        An IRC user on one node and line users on others share a room:
        lines both ways, and NAMES, WHO and WHOIS list the remote users.
        """
        irc = self.cluster.nodes[0].connect_irc()
        irc.lines("NICK ivy", "USER ivy 0 * :Ivy Irc", "JOIN #lobby")
        self.cluster.settle()
        bob = self.cluster.connect(1, "bob")
        self.cluster.settle()
        discard(irc, bob)
        bob.say("hi ivy")
        self.cluster.settle()
        self.assertIn(":bob!bob@chatservice PRIVMSG #lobby :hi ivy", irc.take())
        irc.lines("PRIVMSG #lobby :hi bob", "NAMES #lobby", "WHOIS bob")
        self.cluster.settle()
        self.assertEqual(bob.take(), ["[lobby] <ivy> hi bob"])
        replies = "\n".join(irc.take())
        self.assertIn("bob", replies.split(" 353 ")[1].split("\r")[0])
        self.assertIn(" 311 ivy bob ", replies)

    def test_stop(self) -> None:
        """A node that stops: the others see its users quit, saying why."""
        alice = self.cluster.connect(0, "alice")
        bob = self.cluster.connect(1, "bob")
        discard(alice, bob)
        self.cluster.replicas[0].stop()
        self.cluster.settle()
        self.assertIn("server shutting down", "\n".join(bob.take()))
        self.assertNotIn("alice", self.cluster.nodes[1].chat.members)

    def test_server_ban_everywhere(self) -> None:
        """
        A server ban set on one node holds on the others: a login as the
        banned account there is refused; lifted, it is gone everywhere.
        """
        from chatservice.core.server_bans import ServerBan

        chat = self.cluster.nodes[0].chat
        chat.server_bans.add(ServerBan("$a:mallory", "oper", 0.0, None, "spam"))
        self.cluster.settle()
        for node in self.cluster.nodes:
            self.assertIsNotNone(node.chat.server_bans.account_ban("mallory"))
        chat.server_bans.remove("$a:mallory")
        self.cluster.settle()
        for node in self.cluster.nodes:
            self.assertIsNone(node.chat.server_bans.account_ban("mallory"))

    def test_owner_takes_name_from_another_node(self) -> None:
        """
        The owner of a registered name logs in on one node while a guest
        holds the name on another: the guest is renamed there, told why,
        and the owner has the name everywhere.
        """
        squatter = self.cluster.connect(1, "alice")
        owner = self.cluster.connect(0, "owner")
        discard(squatter, owner)
        chat = self.cluster.nodes[0].chat
        chat.log_in(chat.find("owner"), "alice")
        self.cluster.settle()
        self.assertEqual(owner.nick, "alice")
        self.assertTrue(squatter.nick.startswith("guest"))
        self.assertIn("alice", "\n".join(squatter.take()))
        self.assertEqual(self.cluster.hub.holder("alice"), "n1/1")
        for node in self.cluster.nodes:
            self.assertIs(
                node.chat.members["alice"].remote, node is not self.cluster.nodes[0]
            )

    def test_malformed_batches(self) -> None:
        """
        Batches that are not JSON, entries of unknown kinds or shapes, and
        events that do not decode are logged and skipped; what follows is
        applied.
        """
        from tests.support.helpers import capture_events

        logged = capture_events(self)
        alice = self.cluster.connect(0, "alice")
        bob = self.cluster.connect(1, "bob")
        discard(alice, bob)
        hub = self.cluster.hub
        hub.append("evil", b"\xff not json")
        hub.append(
            "evil",
            b'[["?"], 7, ["r"], ["r", "lobby", [[null, ["Said", 1]]]],'
            b' ["m", "x"], ["g"], ["t", "evil/1", ["Nope", {}]]]',
        )
        self.cluster.settle()
        alice.say("still fine")
        self.cluster.settle()
        self.assertEqual(bob.take(), ["[lobby] <alice> still fine"])
        self.assertTrue(logged)

    def test_newcomer_while_cut_off(self) -> None:
        """
        Someone who connects while its node cannot reach the backplane (a
        blip) keeps its name once the node is back, rather than lose it.
        """
        self.cluster.planes[0].cut()
        alice = self.cluster.nodes[0].connect()
        self.cluster.settle()
        alice.say("/nick alice")
        self.cluster.settle()
        self.cluster.planes[0].mend()
        self.cluster.settle()
        self.assertTrue(alice.connected)
        self.assertEqual(alice.nick, "alice")
        self.assertEqual(self.cluster.hub.holder("alice"), "n1/1")


class ClusterAccountsTests(SynchronousTestCase):
    """Accounts in a database every node shares."""

    def setUp(self) -> None:
        from tests.core.test_accounts import HASHER, Hashing
        from tests.core.test_shared_accounts import SharedDatabase

        self.database = SharedDatabase()
        hashing = Hashing()
        self.cluster = Cluster(
            self,
            2,
            accounts=lambda chat, registered: Accounts(
                chat,
                in_thread=hashing,
                save=self.database.save,
                clock=chat.clock,
                accounts=registered,
                hasher=HASHER,
                lookup=self.database.lookup,
            ),
        )

    def test_registered_everywhere(self) -> None:
        """
        A name registered on one node is registered on the others at once:
        nobody there may take it once its owner is gone.
        """
        from tests.core.test_accounts import PASSWORD

        alice = self.cluster.connect(0, "alice")
        alice.say(f"/register {PASSWORD}")
        self.cluster.settle()
        self.assertIn("alice", self.cluster.nodes[1].chat.registered)
        alice.say("/quit")
        self.cluster.settle()
        other = self.cluster.connect(1, "other")
        discard(other)
        other.say("/nick alice")
        self.cluster.settle()
        self.assertEqual(other.nick, "other")
        self.assertIn("registered", "\n".join(other.take()))


class GuestCollisionTests(SynchronousTestCase):
    def test_newcomers_at_once(self) -> None:
        """
        Newcomers arrive at two nodes in the same turns, which hand out the
        same guest numbers: every one of them stays, under a name of its
        own.
        """
        cluster = Cluster(self, 2)
        cluster.hub.claim_latency = True
        transports = []
        for i in range(20):
            for n, node in enumerate(cluster.nodes):
                # Connected within one turn, as a crowd arriving at once.
                address = node.address(f"10.0.{n}.{i}")
                proto = node.factory.buildProtocol(address)
                assert proto is not None
                transport = StringTransport(peerAddress=address)
                proto.makeConnection(transport)
                transports.append((proto, transport))
        cluster.settle()
        for _ in range(3):
            cluster.clock.advance(0.1)
            cluster.settle()
        members = [proto.member for proto, _ in transports]  # type: ignore[attr-defined]
        self.assertTrue(all(m is not None and m.connected for m in members))
        nicks = {m.nick for m in members}
        self.assertEqual(len(nicks), 40)
        for nick in nicks:
            self.assertIsNotNone(cluster.hub.holder(nick))


class MoreAcrossNodesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cluster = Cluster(self, 2)

    def test_action_and_mute(self) -> None:
        """
        An action crosses nodes; a mute set on one node silences its target
        on the other, where it is refused.
        """
        alice = self.cluster.connect(0, "alice")
        bob = self.cluster.connect(1, "bob")
        discard(alice, bob)
        alice.say("/me waves")
        self.cluster.settle()
        self.assertEqual(bob.take(), ["[lobby] * alice waves"])
        alice.say("/mute bob")
        self.cluster.settle()
        discard(alice, bob)
        bob.say("can you hear me")
        self.cluster.settle()
        self.assertEqual(alice.take(), [])
        self.assertTrue(bob.take()[0].startswith("!!! "))

    def test_irc_list_and_who(self) -> None:
        """IRC's LIST and WHO count and name members of every node."""
        irc = self.cluster.nodes[0].connect_irc()
        irc.lines("NICK ivy", "USER ivy 0 * :Ivy", "JOIN #lobby")
        bob = self.cluster.connect(1, "bob")
        self.cluster.settle()
        discard(irc, bob)
        irc.lines("LIST", "WHO #lobby")
        self.cluster.settle()
        replies = irc.take()
        self.assertIn(" 322 ivy #lobby 2 ", "\n".join(replies))
        who = [line for line in replies if " 352 " in line]
        self.assertEqual(sorted(line.split()[7] for line in who), ["bob", "ivy"])


class CoalescingTests(SynchronousTestCase):
    def test_held_while_one_is_on_its_way(self) -> None:
        """
        While a batch is on its way to the log, the turns after it are held
        and go as one batch once it is in: under load, batches grow.
        """
        cluster = Cluster(self, 2)
        alice = cluster.connect(0, "alice")
        bob = cluster.connect(1, "bob")
        discard(alice, bob)
        plane = cluster.planes[0]
        plane.cut()
        alice.say("one")
        self.assertEqual(plane.waiting(), 1)
        for word in ("two", "three", "four"):
            alice.say(word)
        self.assertEqual(plane.waiting(), 1)
        before = cluster.hub.seq
        plane.mend()
        cluster.settle()
        self.assertEqual(cluster.hub.seq - before, 2)
        self.assertEqual(
            bob.take(),
            [f"[lobby] <alice> {w}" for w in ("one", "two", "three", "four")],
        )

    def writes(self, connection: Connection) -> list[bytes]:
        """Record each write the server makes to C{connection}."""
        writes: list[bytes] = []
        write = connection.transport.write

        def recorded(data: bytes) -> None:
            writes.append(data)
            write(data)

        self.patch(connection.transport, "write", recorded)
        return writes

    def late_own_batches(self, cluster: Cluster, delay: float) -> None:
        """The first node hears its own batches back C{delay} seconds on."""
        plane = cluster.planes[0]
        live = plane._live
        self.patch(
            plane,
            "_live",
            lambda batch: (
                cluster.clock.callLater(delay, live, batch)
                if batch.node == "n1"
                else live(batch)
            ),
        )

    def test_output_waits_for_own_batch(self) -> None:
        """
        A batch of another node's that arrives while this node's own is on
        its way round waits for it: a member here gets both in one write,
        in the log's order.
        """
        cluster = Cluster(self, 2)
        alice = cluster.connect(0, "alice")
        bob = cluster.connect(1, "bob")
        carol = cluster.connect(0, "carol")
        discard(alice, bob, carol)
        writes = self.writes(carol)
        # A call later: after the fan-out's flush for what arrived before.
        self.late_own_batches(cluster, 0)
        # Both nodes publish in one turn, bob's node first.
        bob.proto.dataReceived(b"from bob\n")
        alice.proto.dataReceived(b"from alice\n")
        cluster.settle()
        self.assertEqual(
            writes, [b"[lobby] <bob> from bob\r\n[lobby] <alice> from alice\r\n"]
        )

    def test_hold_is_brief(self) -> None:
        """
        If this node's batch does not come back, what arrived from the others
        goes out after DELIVERY_HOLD all the same.
        """
        cluster = Cluster(self, 2)
        alice = cluster.connect(0, "alice")
        bob = cluster.connect(1, "bob")
        carol = cluster.connect(0, "carol")
        discard(alice, bob, carol)
        plane = cluster.planes[0]
        live = plane._live
        # The first node never hears its own batches back.
        self.patch(plane, "_live", lambda batch: batch.node == "n1" or live(batch))
        bob.proto.dataReceived(b"from bob\n")
        alice.proto.dataReceived(b"from alice\n")
        cluster.settle()
        self.assertEqual(carol.take(), [])
        cluster.clock.advance(DELIVERY_HOLD)
        cluster.settle()
        self.assertEqual(carol.take(), ["[lobby] <bob> from bob"])

    def test_nothing_waits_at_rest(self) -> None:
        """With nothing of its own on the way, a node delivers at once."""
        cluster = Cluster(self, 2)
        alice = cluster.connect(0, "alice")
        bob = cluster.connect(1, "bob")
        discard(alice, bob)
        alice.proto.dataReceived(b"hello\n")
        cluster.clock.advance(0)  # alice's node publishes
        cluster.clock.advance(0)  # the batch reaches bob's node
        cluster.clock.advance(0)  # and bob's output goes out
        self.assertEqual(bob.take(), ["[lobby] <alice> hello"])

    def test_own_batch_not_decoded(self) -> None:
        """
        A node applies its own batch, when it comes back, as it was before
        it was encoded; the others decode it.
        """
        cluster = Cluster(self, 2)
        alice = cluster.connect(0, "alice")
        bob = cluster.connect(1, "bob")
        carol = cluster.connect(0, "carol")
        discard(alice, bob, carol)
        decoded: list[str] = []
        decode_room = codec.decode_room

        def counted(room: str, wire: object) -> list[codec.RoomItem]:
            decoded.append(room)
            return decode_room(room, wire)

        self.patch(codec, "decode_room", counted)
        records: list[str] = []
        encode_record = replica_module.encode_record

        def recorded(kind: Kind, sender: str, text: str) -> bytes:
            records.append(text)
            return encode_record(kind, sender, text)

        self.patch(replica_module, "encode_record", recorded)
        alice.lines("one", "two")
        cluster.settle()
        self.assertEqual(decoded, ["lobby"])
        # Made by the other node only: the author has its chat's records.
        self.assertEqual(records, ["one", "two"])
        self.assertEqual(cluster.replicas[0]._mine, {})
        expected = ["[lobby] <alice> one", "[lobby] <alice> two"]
        self.assertEqual(bob.take(), expected)
        self.assertEqual(carol.take(), expected)
        # Both nodes' histories keep the lines, the author's from the
        # records its chat made.
        tails = [
            list(node.chat.history.tails["lobby"].records)[-2:]  # type: ignore[union-attr]
            for node in cluster.nodes
        ]
        self.assertEqual(tails[0], [b"malice one\n", b"malice two\n"])
        self.assertEqual(tails[1], tails[0])

    def test_output_goes_out_under_steady_load(self) -> None:
        """
        Under a steady load, with a batch of this node's always on its way
        round, what arrives from the other node is still delivered within
        DELIVERY_HOLD, not held while the load lasts.
        """
        cluster = Cluster(self, 2, limits=Limits(flood_rate=0))
        alice = cluster.connect(0, "alice")
        bob = cluster.connect(1, "bob")
        carol = cluster.connect(0, "carol")
        discard(alice, bob, carol)
        self.late_own_batches(cluster, 0.0005)
        heard: list[str] = []
        for i in range(200):
            bob.proto.dataReceived(f"b{i}\n".encode())
            alice.proto.dataReceived(f"a{i}\n".encode())
            cluster.clock.advance(0.0001)
            cluster.settle()
            heard += [line.split("> ")[1] for line in carol.take()]
        from_bob = [t for t in heard if t.startswith("b")]
        # All but the last few milliseconds' lines are out, in order.
        self.assertGreater(len(from_bob), 150)
        self.assertEqual(from_bob, [f"b{i}" for i in range(len(from_bob))])

    def paced(self, took: float) -> tuple[Connection, list[bytes]]:
        """
        Two nodes: bob on the second; carol, alone on the first, whose
        every flush takes C{took} seconds. Bob's lines, and carol's writes.
        """
        cluster = Cluster(self, 2)
        carol = cluster.connect(0, "carol")
        bob = cluster.connect(1, "bob")
        discard(carol, bob)
        fanout = cluster.nodes[0].chat.fanout
        now = iter(range(1000))
        self.patch(fanout, "_timer", lambda: next(now) * took)
        self.cluster = cluster
        return bob, self.writes(carol)

    def test_slow_delivery_paces_the_next(self) -> None:
        """
        A node whose last delivery took long (many members, say) waits as
        long again before the next: what comes in meanwhile goes in one
        write, as one process would write it.
        """
        took = 2 * PACE_FROM
        bob, writes = self.paced(took)
        bob.say("one")
        self.cluster.settle()
        self.assertEqual(writes, [b"[lobby] <bob> one\r\n"])
        bob.say("two")
        bob.say("three")
        self.cluster.settle()
        self.assertEqual(len(writes), 1)
        self.cluster.clock.advance(2 * took)
        self.cluster.settle()
        self.assertEqual(writes[1:], [b"[lobby] <bob> two\r\n[lobby] <bob> three\r\n"])

    def test_quick_delivery_goes_at_once(self) -> None:
        """Deliveries quicker than PACE_FROM pace nothing."""
        bob, writes = self.paced(PACE_FROM / 2)
        for word in ("one", "two", "three"):
            bob.say(word)
            self.cluster.settle()
        self.assertEqual(
            writes, [f"[lobby] <bob> {w}\r\n".encode() for w in ("one", "two", "three")]
        )

    def test_pace_is_bounded(self) -> None:
        """However long a delivery took, the next waits HOLD_MOST at most."""
        bob, writes = self.paced(10.0)
        bob.say("one")
        self.cluster.settle()
        bob.say("two")
        self.cluster.settle()
        self.assertEqual(len(writes), 1)
        self.cluster.clock.advance(HOLD_MOST)
        self.cluster.settle()
        self.assertEqual(writes[1:], [b"[lobby] <bob> two\r\n"])

    def test_stop_drops_the_hold(self) -> None:
        """A node that stops leaves no hold's timer behind."""
        cluster = Cluster(self, 2)
        replica = cluster.replicas[0]
        replica._in_the_air = 1
        self.assertTrue(replica.holding())
        hold = replica._hold
        assert hold is not None
        replica.stop()
        self.assertFalse(hold.active())

    def test_no_hold_once_stopping(self) -> None:
        """A node that is leaving the cluster holds nothing back."""
        cluster = Cluster(self, 2)
        replica = cluster.replicas[0]
        replica._in_the_air = 1
        replica.stop()
        replica._in_the_air = 1
        self.assertFalse(replica.holding())
