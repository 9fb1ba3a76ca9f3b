"""
The chat core's rules as a line user meets them: delivery, ordering, names
and rooms, through L{LineChat} (the core plus the line front end's policy)
without a socket.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from chatservice.core.errors import ChatError
from chatservice.core.rooms import Member
from chatservice.frontends.line.wire import reason
from tests.support.lines import RENDERER, LineChat
from tests.support.memory import ManualScheduler


class Recorder:
    """
    A session that keeps every delivery as it came.
    """

    renderer = RENDERER

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.on_deliver: Callable[[], None] | None = None

    def deliver(self, data: bytes) -> None:
        self.writes.append(data)
        if self.on_deliver is not None:
            self.on_deliver()

    def close(self) -> None:
        self.closed = True

    def lines(self) -> list[str]:
        return b"".join(self.writes).decode("utf-8").split("\r\n")[:-1]

    def take(self) -> list[str]:
        lines = self.lines()
        self.writes.clear()
        return lines


class RegistryTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.scheduler = ManualScheduler()
        self.registry = LineChat(schedule=self.scheduler)
        self.recorders: list[Recorder] = []

    def connect(self, nick: str | None = None) -> tuple[Member, Recorder]:
        """
        Connect a member, and forget everything delivered so far to anyone.
        """
        recorder = Recorder()
        self.recorders.append(recorder)
        member = self.registry.connect(recorder)
        if nick is not None:
            self.registry.rename(member, nick)
        self.scheduler.run()
        for each in self.recorders:
            each.writes.clear()
        return member, recorder

    def deliver(self) -> None:
        self.scheduler.run()


class ConnectTests(RegistryTestCase):
    def test_guest_in_lobby(self) -> None:
        recorder = Recorder()
        member = self.registry.connect(recorder)
        self.deliver()
        self.assertEqual(member.nick, "guest1")
        self.assertEqual(self.registry.current(member), self.registry.rooms["lobby"])
        self.assertEqual(
            recorder.lines(),
            [
                "*** Welcome to chatservice, guest1! You are in lobby. "
                "Type /help for commands."
            ],
        )

    def test_guest_numbers_skip_taken_names(self) -> None:
        self.connect("guest2")
        member, _ = self.connect()
        self.assertEqual(member.nick, "guest3")

    def test_others_see_join(self) -> None:
        _, alice = self.connect("alice")
        self.registry.connect(Recorder())
        self.deliver()
        self.assertEqual(alice.take(), ["[lobby] --> guest2 joined"])


class DeliveryTests(RegistryTestCase):
    def test_not_to_sender(self) -> None:
        alice, a = self.connect("alice")
        _, b = self.connect("bob")
        _, c = self.connect("carol")
        self.registry.say(alice, "hello")
        self.deliver()
        self.assertEqual(a.take(), [])
        self.assertEqual(b.take(), ["[lobby] <alice> hello"])
        self.assertEqual(c.take(), ["[lobby] <alice> hello"])

    def test_one_write_per_member_per_turn(self) -> None:
        """
        All lines queued before a flush reach each member in one write, in
        order, and each sender gets the others' lines but not its own.
        """
        alice, a = self.connect("alice")
        bob, b = self.connect("bob")
        _, c = self.connect("carol")
        self.registry.say(alice, "1")
        self.registry.say(bob, "2")
        self.registry.say(alice, "3")
        self.assertEqual(len(self.scheduler.calls), 1)
        self.deliver()
        self.assertEqual(len(c.writes), 1)
        self.assertEqual(
            c.take(),
            ["[lobby] <alice> 1", "[lobby] <bob> 2", "[lobby] <alice> 3"],
        )
        self.assertEqual(a.take(), ["[lobby] <bob> 2"])
        self.assertEqual(b.take(), ["[lobby] <alice> 1", "[lobby] <alice> 3"])

    def test_shared_bytes_for_non_senders(self) -> None:
        """
        The joined lines of a room are built once and shared.
        """
        alice, _ = self.connect("alice")
        _, b = self.connect("bob")
        _, c = self.connect("carol")
        self.registry.say(alice, "1")
        self.registry.say(alice, "2")
        self.deliver()
        self.assertIs(b.writes[0], c.writes[0])

    def test_room_isolation(self) -> None:
        alice, a = self.connect("alice")
        bob, b = self.connect("bob")
        self.registry.join(bob, "python")
        self.deliver()
        a.take()
        b.take()
        self.registry.say(bob, "in python")
        self.registry.say(alice, "in lobby")
        self.deliver()
        self.assertEqual(a.take(), [])
        self.assertEqual(b.take(), ["[lobby] <alice> in lobby"])

    def test_joiner_does_not_see_earlier_lines(self) -> None:
        alice, _ = self.connect("alice")
        bob, b = self.connect("bob")
        self.registry.join(alice, "python")
        self.registry.say(alice, "before")
        self.registry.join(bob, "python")
        self.registry.say(alice, "after")
        self.deliver()
        self.assertEqual(
            b.take(),
            [
                "*** Now talking in python (2 members).",
                "[python] <alice> after",
            ],
        )

    def test_leaver_sees_lines_before_leaving(self) -> None:
        alice, _ = self.connect("alice")
        bob, b = self.connect("bob")
        self.registry.say(alice, "before")
        self.registry.part(bob)
        self.registry.say(alice, "after")
        self.deliver()
        self.assertEqual(
            b.take(),
            [
                "[lobby] <alice> before",
                "*** You left lobby; you are in no room now; /join one to talk.",
            ],
        )

    def test_private_after_room_line(self) -> None:
        """
        A private line never overtakes a room line its sender said first.
        """
        alice, _ = self.connect("alice")
        _, b = self.connect("bob")
        self.registry.say(alice, "public")
        self.registry.whisper(alice, "BOB", "private")
        self.deliver()
        self.assertEqual(b.take(), ["[lobby] <alice> public", "*alice* private"])

    def test_private_only_to_target(self) -> None:
        alice, a = self.connect("alice")
        _, b = self.connect("bob")
        _, c = self.connect("carol")
        self.registry.whisper(alice, "bob", "psst")
        self.deliver()
        self.assertEqual(b.take(), ["*alice* psst"])
        self.assertEqual(c.take(), [])
        self.assertEqual(a.take(), [])

    def test_private_to_unknown(self) -> None:
        alice, _ = self.connect("alice")
        e = self.assertRaises(ChatError, self.registry.whisper, alice, "zed", "x")
        self.assertEqual(reason(e), "No such nickname: zed.")

    def test_action(self) -> None:
        alice, _ = self.connect("alice")
        _, b = self.connect("bob")
        self.registry.act(alice, "waves")
        self.deliver()
        self.assertEqual(b.take(), ["[lobby] * alice waves"])

    def test_say_in_no_room(self) -> None:
        alice, _ = self.connect("alice")
        self.registry.part(alice)
        e = self.assertRaises(ChatError, self.registry.say, alice, "x")
        self.assertIn("not in any room", reason(e))

    def test_immediate_schedule_by_default(self) -> None:
        registry = LineChat()
        a, b = Recorder(), Recorder()
        alice = registry.connect(a)
        registry.connect(b)
        b.writes.clear()
        registry.say(alice, "now")
        self.assertEqual(b.lines(), ["[lobby] <guest1> now"])


class DisconnectTests(RegistryTestCase):
    def test_disconnect_during_flush(self) -> None:
        """
        A recipient whose delivery makes another member disconnect (as a
        failing socket might) harms nobody: no exception, everyone still
        connected gets the line, and the room hears of the loss.
        """
        alice, _ = self.connect("alice")
        _, b = self.connect("bob")
        carol, c = self.connect("carol")
        _, d = self.connect("dave")
        b.on_deliver = lambda: self.registry.disconnect(carol, "connection lost")
        self.registry.say(alice, "hello")
        self.deliver()
        self.assertEqual(b.take(), ["[lobby] <alice> hello"])
        self.assertEqual(c.take(), [])
        self.assertEqual(d.take(), ["[lobby] <alice> hello"])
        self.deliver()
        self.assertEqual(d.take(), ["[lobby] <-- carol quit (connection lost)"])
        self.assertNotIn("carol", self.registry.members)
        self.assertNotIn(carol, self.registry.rooms["lobby"].members)

    def test_self_disconnect_during_flush(self) -> None:
        alice, _ = self.connect("alice")
        bob, b = self.connect("bob")
        _, c = self.connect("carol")
        b.on_deliver = lambda: self.registry.disconnect(bob, "connection lost")
        self.registry.say(alice, "hello")
        self.deliver()
        self.deliver()
        self.assertEqual(
            c.take(),
            ["[lobby] <alice> hello", "[lobby] <-- bob quit (connection lost)"],
        )

    def test_disconnect_twice(self) -> None:
        alice, _ = self.connect("alice")
        _, b = self.connect("bob")
        self.registry.disconnect(alice, "gone")
        self.registry.disconnect(alice, "gone again")
        self.deliver()
        self.assertEqual(b.take(), ["[lobby] <-- alice quit (gone)"])

    def test_nick_reusable_after_disconnect(self) -> None:
        alice, _ = self.connect("alice")
        self.registry.disconnect(alice, "gone")
        other, _ = self.connect("ALICE")
        self.assertEqual(other.nick, "ALICE")

    def test_quit(self) -> None:
        alice, a = self.connect("alice")
        _, b = self.connect("bob")
        self.registry.quit(alice, "bye")
        self.assertTrue(a.closed)
        self.assertEqual(a.take(), ["*** Goodbye."])
        self.deliver()
        self.assertEqual(b.take(), ["[lobby] <-- alice quit (bye)"])

    def test_queued_lines_reach_quitter_first(self) -> None:
        alice, a = self.connect("alice")
        bob, _ = self.connect("bob")
        self.registry.say(bob, "last words for you")
        self.registry.quit(alice, "")
        self.assertEqual(a.take(), ["[lobby] <bob> last words for you", "*** Goodbye."])

    def test_empty_room_disappears(self) -> None:
        alice, _ = self.connect("alice")
        self.registry.join(alice, "python")
        self.assertIn("python", self.registry.rooms)
        self.registry.disconnect(alice, "gone")
        self.assertEqual(self.registry.rooms, {})


class NameTests(RegistryTestCase):
    def test_rename_announced(self) -> None:
        alice, a = self.connect("alice")
        _, b = self.connect("bob")
        self.registry.join(alice, "python")
        self.deliver()
        a.take()
        b.take()
        self.registry.rename(alice, "alicia")
        self.deliver()
        self.assertEqual(a.take(), ["*** You are now known as alicia."])
        self.assertEqual(b.take(), ["[lobby] --- alice is now known as alicia"])

    def test_collision_any_case(self) -> None:
        self.connect("alice")
        bob, _ = self.connect("bob")
        for taken in ["alice", "ALICE", "Alice", "\uff41lice"]:
            with self.subTest(taken=taken):
                e = self.assertRaises(ChatError, self.registry.rename, bob, taken)
                self.assertIn("taken", reason(e))
        self.assertEqual(bob.nick, "bob")

    def test_change_own_case(self) -> None:
        alice, _ = self.connect("alice")
        self.registry.rename(alice, "Alice")
        self.assertEqual(alice.nick, "Alice")
        self.assertIs(self.registry.find("ALICE"), alice)

    def test_invalid(self) -> None:
        alice, _ = self.connect("alice")
        e = self.assertRaises(ChatError, self.registry.rename, alice, "a b")
        self.assertTrue(reason(e).startswith("Invalid nickname: "))
        e = self.assertRaises(ChatError, self.registry.rename, alice, "Server")
        self.assertIn("reserved", reason(e))


class RoomTests(RegistryTestCase):
    def test_join_existing_membership_switches(self) -> None:
        alice, a = self.connect("alice")
        self.registry.join(alice, "python")
        self.registry.join(alice, "#LOBBY")
        self.assertEqual(self.registry.current(alice), self.registry.rooms["lobby"])
        self.deliver()
        self.assertEqual(a.lines()[-1], "*** Now talking in lobby.")

    def test_part_named_room_keeps_current(self) -> None:
        alice, _ = self.connect("alice")
        python = self.registry.join(alice, "python")
        self.registry.part(alice, "lobby")
        self.assertIs(self.registry.current(alice), python)

    def test_part_current_falls_back_to_latest(self) -> None:
        alice, _ = self.connect("alice")
        self.registry.join(alice, "a")
        b = self.registry.join(alice, "b")
        self.registry.join(alice, "c")
        self.registry.part(alice)
        self.assertIs(self.registry.current(alice), b)

    def test_part_room_not_in(self) -> None:
        alice, _ = self.connect("alice")
        e = self.assertRaises(ChatError, self.registry.part, alice, "nowhere")
        self.assertEqual(reason(e), "You are not in nowhere.")

    def test_others_see_part(self) -> None:
        alice, _ = self.connect("alice")
        _, b = self.connect("bob")
        self.registry.part(alice)
        self.deliver()
        self.assertEqual(b.take(), ["[lobby] <-- alice left"])

    def test_listing_and_who(self) -> None:
        alice, _ = self.connect("alice")
        self.connect("bob")
        self.registry.join(alice, "python")
        self.assertEqual(
            [(r.name, len(r.members)) for r in self.registry.listing()],
            [("lobby", 2), ("python", 1)],
        )
        lobby = self.registry.room("lobby")
        self.assertEqual(self.registry.who(lobby), "lobby (2 members): @alice, bob")
        self.assertEqual(
            self.registry.who(lobby, limit=1), "lobby (2 members): @alice, and 1 more"
        )

    def test_no_such_room(self) -> None:
        e = self.assertRaises(ChatError, self.registry.room, "nowhere")
        self.assertEqual(reason(e), "No such room: nowhere.")
