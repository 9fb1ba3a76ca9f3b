"""
Room operators and topics in the chat core, seen as the events emitted and
the typed errors raised.
"""

from __future__ import annotations

from chatservice.core import errors, events
from chatservice.core.chat import Chat
from chatservice.core.history import History
from chatservice.core.operators import TOPIC_MAX
from chatservice.core.rooms import Member, Room
from tests.core.test_chat import ChatTestCase, EventSession


class OperatorTestCase(ChatTestCase):
    """
    alice created python, so is its operator; bob and carol joined after.
    """

    def setUp(self) -> None:
        super().setUp()
        self.now = 1_800_000_000.0
        self.chat = Chat(
            schedule=self.turns,
            history=History(clock=lambda: self.now),
            replay=5,
        )
        self.alice, self.bob, self.carol = (
            self.connect("alice"),
            self.connect("bob"),
            self.connect("carol"),
        )
        self.room = self.chat.join(self.alice, "python")
        self.chat.join(self.bob, "python")
        self.chat.join(self.carol, "python")
        for member in (self.alice, self.bob, self.carol):
            self.take(member)

    def everyone(self) -> list[list[events.Event]]:
        return [self.take(m) for m in (self.alice, self.bob, self.carol)]

    def assertUnchanged(self, operators: set[Member], topic: str | None) -> None:
        self.assertEqual(self.room.operators, operators)
        self.assertEqual(
            None if self.room.topic is None else self.room.topic.text, topic
        )
        self.assertEqual(self.everyone(), [[], [], []])


class CreatorTests(OperatorTestCase):
    def test_creatorIsOperator(self) -> None:
        """
        Whoever enters a room empty is its operator; who comes later is not.
        """
        self.assertEqual(self.room.operators, {self.alice})

    def test_leavingDropsStatus(self) -> None:
        """
        Operator status belongs to the membership: parting or quitting
        drops it, and coming back does not restore it while others are
        there.
        """
        self.chat.part(self.alice, self.room)
        self.assertEqual(self.room.operators, set())
        self.chat.join(self.alice, "python")
        self.assertEqual(self.room.operators, set())

    def test_emptyRoomMadeAnew(self) -> None:
        """
        A room left empty is gone; whoever makes it again is its operator.
        """
        for member in (self.alice, self.bob, self.carol):
            self.chat.part(member, self.room)
        room = self.chat.join(self.carol, "python")
        self.assertEqual(room.operators, {self.carol})

    def test_renameKeepsStatus(self) -> None:
        self.chat.rename(self.alice, "alicia")
        self.assertEqual(self.room.operators, {self.alice})
        self.chat.op(self.alice, self.room, "bob")
        self.assertIn(events.Opped("python", "bob", "alicia"), self.take(self.carol))

    def test_namesMarkOperators(self) -> None:
        self.chat.names(self.bob, self.room)
        self.assertEqual(
            self.take(self.bob),
            [events.Names("python", ["alice", "bob", "carol"], frozenset({"alice"}))],
        )

    def test_disconnectDropsStatus(self) -> None:
        self.chat.disconnect(self.alice, "gone")
        self.assertEqual(self.room.operators, set())


class TopicTests(OperatorTestCase):
    def test_setTopic(self) -> None:
        """
        An operator sets the topic: everyone in the room, the setter
        included, is told.
        """
        self.chat.set_topic(self.alice, self.room, "all about \x1b[31mPython")
        said = events.TopicSet("python", "alice", "all about Python")
        self.assertEqual(self.everyone(), [[said], [said], [said]])
        self.assertEqual(
            self.room.topic,
            events.Topic("python", "all about Python", "alice", self.now),
        )

    def test_query(self) -> None:
        self.chat.topic(self.bob, self.room)
        self.chat.set_topic(self.alice, self.room, "hi")
        self.take(self.bob)
        self.chat.topic(self.bob, self.room)
        self.assertEqual(
            self.take(self.bob),
            [events.Topic("python", "hi", "alice", self.now)],
        )

    def test_queryNone(self) -> None:
        self.chat.topic(self.bob, self.room)
        self.assertEqual(self.take(self.bob), [events.NoTopic("python")])

    def test_shownOnEntering(self) -> None:
        """
        Who enters a room with a topic is told it after L{events.Entered}
        and before the history.
        """
        self.chat.say(self.alice, self.room, "hello")
        self.chat.set_topic(self.alice, self.room, "hi")
        dave = self.connect("dave")
        self.chat.join(dave, "PYTHON")
        got = self.take(dave)
        self.assertEqual(
            got[:2],
            [
                events.Entered("python", 4),
                events.Topic("python", "hi", "alice", self.now),
            ],
        )
        self.assertIsInstance(got[2], events.Replay)
        self.assertEqual(len(got), 3)

    def test_clear(self) -> None:
        self.chat.set_topic(self.alice, self.room, "hi")
        self.everyone()
        self.chat.set_topic(self.alice, self.room, "  ")
        self.assertIsNone(self.room.topic)
        cleared = events.TopicSet("python", "alice", "")
        self.assertEqual(self.everyone(), [[cleared], [cleared], [cleared]])
        dave = self.connect("dave")
        self.chat.join(dave, "python")
        self.assertEqual(len(self.take(dave)), 1)

    def test_outlivesRoom(self) -> None:
        """
        The topic is the history's: a room left empty and made again (under
        another spelling) has it still.
        """
        self.chat.set_topic(self.alice, self.room, "hi")
        for member in (self.alice, self.bob, self.carol):
            self.chat.part(member, self.room)
        room = self.chat.join(self.bob, "Python")
        self.assertEqual(room.topic, events.Topic("Python", "hi", "alice", self.now))
        self.assertIn(room.topic, self.take(self.bob))

    def test_withoutHistory(self) -> None:
        """
        A chat that keeps no history keeps a topic while the room exists.
        """
        chat = Chat(clock=lambda: 5.0)
        alice = chat.connect(EventSession(self.renderer), "alice")
        room = chat.join(alice, "x")
        chat.set_topic(alice, room, "t")
        self.assertEqual(room.topic, events.Topic("x", "t", "alice", 5.0))
        chat.part(alice, room)
        self.assertIsNone(chat.join(alice, "x").topic)

    def test_longest(self) -> None:
        self.chat.set_topic(self.alice, self.room, "x" * TOPIC_MAX)
        assert self.room.topic is not None
        self.assertEqual(len(self.room.topic.text), TOPIC_MAX)

    def test_tooLong(self) -> None:
        e = self.assertRaises(
            errors.TopicTooLong,
            self.chat.set_topic,
            self.alice,
            self.room,
            "x" * (TOPIC_MAX + 1),
        )
        self.assertEqual((e.limit, e.code), (TOPIC_MAX, "topic_too_long"))
        self.assertUnchanged({self.alice}, None)

    def test_notOperator(self) -> None:
        e = self.assertRaises(
            errors.NotOperator, self.chat.set_topic, self.bob, self.room, "mine"
        )
        self.assertEqual((e.room, e.code), ("python", "not_operator"))
        self.assertUnchanged({self.alice}, None)

    def test_notInRoom(self) -> None:
        dave = self.connect("dave")
        e = self.assertRaises(
            errors.NotInRoom, self.chat.set_topic, dave, self.room, "mine"
        )
        self.assertEqual(e.room, "python")
        self.assertUnchanged({self.alice}, None)

    def test_unlocked(self) -> None:
        """
        An operator may let anyone set the topic (IRC's C{-t}), and lock it
        again; the room is told of each change only.
        """
        self.chat.set_setting(self.alice, self.room, "topic_locked", False)
        unlocked = events.SettingChanged("python", "alice", "topic_locked", False)
        self.assertEqual(self.everyone(), [[unlocked]] * 3)
        self.chat.set_setting(self.alice, self.room, "topic_locked", False)
        self.assertEqual(self.everyone(), [[], [], []])
        self.chat.set_topic(self.bob, self.room, "mine")
        self.assertEqual(
            self.everyone(), [[events.TopicSet("python", "bob", "mine")]] * 3
        )
        self.assertRaises(
            errors.NotOperator,
            self.chat.set_setting,
            self.bob,
            self.room,
            "topic_locked",
            True,
        )
        self.chat.set_setting(self.alice, self.room, "topic_locked", True)
        self.everyone()
        self.assertRaises(
            errors.NotOperator, self.chat.set_topic, self.bob, self.room, "again"
        )


class KickTests(OperatorTestCase):
    def test_kick(self) -> None:
        """
        The room, the one kicked included, sees the kick; then it is out.
        """
        self.chat.say(self.bob, self.room, "before")
        self.chat.kick(self.alice, self.room, "BOB", "spam\x07")
        kicked = events.Kicked("python", "bob", "alice", "spam")
        said = events.Said("python", "bob", "before")
        self.assertEqual(self.everyone(), [[said, kicked], [kicked], [said, kicked]])
        self.assertNotIn(self.bob, self.room.members)
        self.assertEqual(self.bob.rooms, {})
        self.chat.say(self.alice, self.room, "after")
        self.assertEqual(self.take(self.bob), [])

    def test_noReason(self) -> None:
        self.chat.kick(self.alice, self.room, "bob")
        self.assertEqual(
            self.take(self.carol), [events.Kicked("python", "bob", "alice", "")]
        )

    def test_kickOperatorAndSelf(self) -> None:
        """
        An operator may kick another operator, or itself; the last one out
        takes the room with it.
        """
        self.chat.op(self.alice, self.room, "carol")
        self.chat.kick(self.carol, self.room, "alice")
        self.assertEqual(self.room.operators, {self.carol})
        self.chat.kick(self.carol, self.room, "bob")
        self.chat.kick(self.carol, self.room, "carol")
        self.assertNotIn("python", self.chat.rooms)
        self.assertEqual(
            self.take(self.carol)[-1], events.Kicked("python", "carol", "carol", "")
        )

    def test_notOperator(self) -> None:
        e = self.assertRaises(
            errors.NotOperator, self.chat.kick, self.bob, self.room, "alice", ""
        )
        self.assertEqual(e.room, "python")
        self.assertUnchanged({self.alice}, None)
        self.assertEqual(len(self.room.members), 3)

    def test_notInRoom(self) -> None:
        dave = self.connect("dave")
        self.assertRaises(errors.NotInRoom, self.chat.kick, dave, self.room, "bob", "")
        self.assertUnchanged({self.alice}, None)

    def test_noSuchNick(self) -> None:
        e = self.assertRaises(
            errors.NoSuchNick, self.chat.kick, self.alice, self.room, "zed", ""
        )
        self.assertEqual(e.nick, "zed")
        self.assertUnchanged({self.alice}, None)

    def test_targetNotInRoom(self) -> None:
        self.connect("Dave")
        e = self.assertRaises(
            errors.TargetNotInRoom, self.chat.kick, self.alice, self.room, "dave", ""
        )
        self.assertEqual(
            (e.room, e.nick, e.code), ("python", "Dave", "target_not_in_room")
        )
        self.assertUnchanged({self.alice}, None)


class OpTests(OperatorTestCase):
    def test_opAndDeop(self) -> None:
        self.chat.op(self.alice, self.room, "Bob")
        opped = events.Opped("python", "bob", "alice")
        self.assertEqual(self.everyone(), [[opped]] * 3)
        self.assertEqual(self.room.operators, {self.alice, self.bob})
        # The new operator may use its status at once.
        self.chat.deop(self.bob, self.room, "alice")
        deopped = events.Deopped("python", "alice", "bob")
        self.assertEqual(self.everyone(), [[deopped]] * 3)
        self.assertEqual(self.room.operators, {self.bob})

    def test_unchanged(self) -> None:
        """
        Giving status to an operator, or taking it from who lacks it, does
        nothing; only the asker is told.
        """
        self.chat.op(self.alice, self.room, "alice")
        self.chat.deop(self.alice, self.room, "bob")
        self.assertEqual(
            self.everyone(),
            [
                [
                    events.OperatorUnchanged("python", "alice", True),
                    events.OperatorUnchanged("python", "bob", False),
                ],
                [],
                [],
            ],
        )

    def test_deopSelf(self) -> None:
        self.chat.deop(self.alice, self.room, "alice")
        self.assertEqual(self.room.operators, set())
        self.assertRaises(
            errors.NotOperator, self.chat.op, self.alice, self.room, "alice"
        )

    def test_hostile(self) -> None:
        """
        Each refusal of op and deop, in IRC's order; nothing changes.
        """
        dave = self.connect("dave")
        other: Room = self.chat.join(dave, "elsewhere")
        self.take(dave)
        for operation in (self.chat.op, self.chat.deop):
            self.assertRaises(errors.NotOperator, operation, self.bob, self.room, "bob")
            self.assertRaises(errors.NotOperator, operation, self.bob, self.room, "zed")
            self.assertRaises(errors.NotInRoom, operation, self.alice, other, "dave")
            self.assertRaises(errors.NotInRoom, operation, dave, self.room, "alice")
            self.assertRaises(
                errors.NoSuchNick, operation, self.alice, self.room, "zed"
            )
            self.assertRaises(
                errors.TargetNotInRoom, operation, self.alice, self.room, "dave"
            )
        self.assertUnchanged({self.alice}, None)
        self.assertEqual(other.operators, {dave})


class VoiceTests(OperatorTestCase):
    def test_voiceAndDevoice(self) -> None:
        """
        An operator gives and takes a voice; the room is told of a change
        only, and the names say who has one.
        """
        self.chat.voice(self.alice, self.room, "Bob")
        self.chat.voice(self.alice, self.room, "bob")
        self.assertEqual(
            self.everyone(), [[events.Voiced("python", "bob", "alice")]] * 3
        )
        self.chat.names(self.carol, self.room)
        [names] = self.take(self.carol)
        assert isinstance(names, events.Names)
        self.assertEqual(names.voiced, frozenset({"bob"}))
        self.chat.devoice(self.alice, self.room, "bob")
        self.assertEqual(
            self.everyone(), [[events.Devoiced("python", "bob", "alice")]] * 3
        )
        self.assertEqual(self.room.voiced, set())

    def test_onlyOperators(self) -> None:
        self.assertRaises(
            errors.NotOperator, self.chat.voice, self.bob, self.room, "carol"
        )
        self.assertEqual(self.room.voiced, set())

    def test_leavingDropsVoice(self) -> None:
        self.chat.voice(self.alice, self.room, "bob")
        self.chat.part(self.bob, self.room)
        self.chat.join(self.bob, "python")
        self.assertEqual(self.room.voiced, set())


class SecretTests(OperatorTestCase):
    def test_secretRoom(self) -> None:
        """
        A secret room is left out of the listing and its names are hidden
        from who is not in it; the room is told of a change only.
        """
        self.chat.set_setting(self.alice, self.room, "secret", True)
        self.chat.set_setting(self.alice, self.room, "secret", True)
        self.assertEqual(
            self.everyone(),
            [[events.SettingChanged("python", "alice", "secret", True)]] * 3,
        )
        dave = self.connect("dave")
        self.chat.list_rooms(dave)
        self.chat.names(dave, self.room)
        self.assertEqual(
            self.take(dave),
            [events.RoomList([]), events.Names("python", [], secret=True)],
        )
        self.chat.list_rooms(self.bob)
        self.assertEqual(self.take(self.bob), [events.RoomList([("python", 3)])])

    def test_onlyOperators(self) -> None:
        self.assertRaises(
            errors.NotOperator,
            self.chat.set_setting,
            self.bob,
            self.room,
            "secret",
            True,
        )
        self.assertFalse(self.room.secret)

    def test_listFilter(self) -> None:
        self.chat.join(self.bob, "rust")
        self.take(self.bob)
        self.chat.list_rooms(self.bob, lambda room: room.name == "rust")
        self.assertEqual(self.take(self.bob), [events.RoomList([("rust", 1)])])
