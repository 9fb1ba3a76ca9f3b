"""
The chat core driven by its typed operations, seen as the events it emits
and the typed errors it raises: no renderer's text is involved.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from chatservice.core import errors, events
from chatservice.core.chat import Chat
from chatservice.core.events import Event
from chatservice.core.history import History
from chatservice.core.rooms import Member
from tests.support.memory import ManualScheduler


class EventRenderer:
    """
    A renderer that keeps the events themselves: each rendering is a token
    that L{EventSession} turns back into the event.
    """

    def __init__(self) -> None:
        self.rendered: list[Event] = []

    def render(self, event: Event) -> bytes:
        self.rendered.append(event)
        return f"{len(self.rendered) - 1}\n".encode()

    def render_to(self, nick: str, event: Event) -> bytes:
        return self.render(event)


class EventSession:
    """
    A session that keeps the events delivered to it, in order.
    """

    def __init__(self, renderer: EventRenderer) -> None:
        self.renderer = renderer
        self.data = b""
        self.closed = False

    def deliver(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True

    def take(self) -> list[Event]:
        tokens, self.data = self.data.split(), b""
        return [self.renderer.rendered[int(token)] for token in tokens]


class ChatTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.turns = ManualScheduler()
        self.chat = Chat(schedule=self.turns, history=History(), replay=5)
        self.renderer = EventRenderer()
        self.sessions: dict[Member, EventSession] = {}

    def connect(self, nick: str) -> Member:
        session = EventSession(self.renderer)
        member = self.chat.connect(session, nick)
        self.sessions[member] = session
        return member

    def take(self, member: Member) -> list[Event]:
        self.turns.run()
        return self.sessions[member].take()


class ConnectTests(ChatTestCase):
    def test_inNoRoom(self) -> None:
        """
        A member connects under the nickname its front end chose, in no
        room, and is told nothing: welcoming is a front end's affair.
        """
        alice = self.connect("alice")
        self.assertEqual((alice.nick, alice.rooms), ("alice", {}))
        self.assertEqual(self.take(alice), [])
        self.assertIs(self.chat.find("ALICE"), alice)

    def test_nickChecked(self) -> None:
        self.connect("alice")
        taken = self.assertRaises(errors.NickTaken, self.connect, "Alice")
        self.assertEqual((taken.nick, taken.code), ("Alice", "nick_taken"))
        invalid = self.assertRaises(errors.InvalidName, self.connect, "a b")
        self.assertEqual((invalid.what, invalid.name), ("nickname", "a b"))
        self.assertIn("letters, digits", invalid.reason)

    def test_registeredNick(self) -> None:
        chat = Chat(registered={"bob"})
        e = self.assertRaises(
            errors.NickRegistered, chat.connect, EventSession(self.renderer), "Bob"
        )
        self.assertEqual(e.nick, "Bob")

    def test_guestNicks(self) -> None:
        self.connect("guest1")
        self.assertEqual(self.chat.guest_nick(), "guest2")


class RoomTests(ChatTestCase):
    def test_joinEmitsEvents(self) -> None:
        alice = self.connect("alice")
        bob = self.connect("bob")
        self.chat.join(alice, "#Python")
        self.assertEqual(self.take(alice), [events.Entered("Python", 1)])
        self.chat.join(bob, "python", announce=False)
        self.assertEqual(self.take(alice), [events.Joined("Python", "bob")])
        self.assertEqual(self.take(bob), [])

    def test_joinTwiceDoesNothing(self) -> None:
        alice = self.connect("alice")
        room = self.chat.join(alice, "python")
        self.take(alice)
        self.assertIs(self.chat.join(alice, "PYTHON"), room)
        self.assertEqual(self.take(alice), [])

    def test_badRoomName(self) -> None:
        alice = self.connect("alice")
        e = self.assertRaises(errors.InvalidName, self.chat.join, alice, "a room")
        self.assertEqual(e.what, "room")

    def test_part(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        room = self.chat.join(alice, "python")
        self.chat.join(bob, "python")
        self.take(alice)
        self.chat.part(bob, room)
        self.assertEqual(self.take(alice), [events.Left("python", "bob", "")])
        e = self.assertRaises(errors.NotInRoom, self.chat.part, bob, room)
        self.assertEqual(e.room, "python")

    def test_lookups(self) -> None:
        alice = self.connect("alice")
        e = self.assertRaises(errors.NoSuchRoom, self.chat.room, "nowhere")
        self.assertEqual(e.room, "nowhere")
        e2 = self.assertRaises(errors.NotInRoom, self.chat.room_of, alice, "x")
        self.assertEqual(e2.room, "x")
        e3 = self.assertRaises(errors.NoSuchNick, self.chat.find, "zed")
        self.assertEqual(e3.nick, "zed")

    def test_names(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        room = self.chat.join(alice, "python")
        self.chat.join(bob, "python")
        self.take(alice)
        self.chat.names(alice, room)
        self.chat.list_rooms(alice)
        self.assertEqual(
            self.take(alice),
            [
                events.Names("python", ["alice", "bob"], frozenset({"alice"})),
                events.RoomList([("python", 2)]),
            ],
        )


class TalkTests(ChatTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob = self.connect("alice"), self.connect("bob")
        self.room = self.chat.join(self.alice, "python")
        self.chat.join(self.bob, "python")
        self.take(self.alice)
        self.take(self.bob)

    def test_sayNamesTheRoom(self) -> None:
        self.chat.say(self.alice, self.room, "hello")
        self.chat.act(self.alice, self.room, "waves")
        self.assertEqual(
            self.take(self.bob),
            [
                events.Said("python", "alice", "hello"),
                events.Acted("python", "alice", "waves"),
            ],
        )
        self.assertEqual(self.take(self.alice), [])

    def test_sayOutsideTheRoom(self) -> None:
        carol = self.connect("carol")
        e = self.assertRaises(errors.NotInRoom, self.chat.say, carol, self.room, "x")
        self.assertEqual(e.room, "python")

    def test_textMadeSafe(self) -> None:
        """
        The core cleans every text itself: a front end that forgot to can
        not relay an escape sequence or a control character.
        """
        self.chat.say(self.alice, self.room, "\x1b[2Jred\x07")
        self.chat.whisper(self.alice, "bob", "\x1b]0;title\x07psst")
        self.chat.quit(self.alice, "bye\x1b[31m")
        self.assertEqual(
            self.take(self.bob),
            [
                events.Said("python", "alice", "red"),
                events.Private("alice", "psst"),
                events.Quit("python", "alice", "bye"),
            ],
        )

    def test_privateAfterRoomLines(self) -> None:
        self.chat.say(self.alice, self.room, "public")
        self.chat.whisper(self.alice, "BOB", "private")
        self.assertEqual(
            self.take(self.bob),
            [
                events.Said("python", "alice", "public"),
                events.Private("alice", "private"),
            ],
        )

    def test_replayOnJoin(self) -> None:
        self.chat.say(self.alice, self.room, "one")
        self.chat.act(self.bob, self.room, "two")
        self.turns.run()
        carol = self.connect("carol")
        self.chat.join(carol, "python", announce=False)
        [replay] = self.take(carol)
        assert isinstance(replay, events.Replay)
        self.assertEqual(replay.room, "python")
        self.assertEqual(
            [(line.kind, line.nick, line.text) for line in replay.lines],
            [("message", "alice", "one"), ("action", "bob", "two")],
        )

    def test_noHistory(self) -> None:
        chat = Chat()
        member = chat.connect(EventSession(self.renderer), "alice")
        room = chat.join(member, "python")
        self.assertRaises(errors.NoHistory, chat.replay_history, member, room, 5)
        self.failureResultOf(
            Deferred.fromCoroutine(chat.history_page(member, room, 5, None)),
            errors.NoHistory,
        )

    def test_historyPage(self) -> None:
        """
        The replay's cursor leads to the lines before it, lines said this
        turn included; only a member of the room may page through it.
        """
        for text in ["one", "two", "three"]:
            self.chat.say(self.alice, self.room, text)
        carol = self.connect("carol")
        self.chat.join(carol, "python", announce=False)
        self.chat.say(self.alice, self.room, "four")
        page = self.successResultOf(
            Deferred.fromCoroutine(self.chat.history_page(carol, self.room, 2, None))
        )
        self.assertEqual([e.text for e in page.lines], ["three", "four"])
        older = self.successResultOf(
            Deferred.fromCoroutine(
                self.chat.history_page(carol, self.room, 5, page.before)
            )
        )
        self.assertEqual(
            ([e.text for e in older.lines], older.before), (["one", "two"], None)
        )
        dave = self.connect("dave")
        self.failureResultOf(
            Deferred.fromCoroutine(self.chat.history_page(dave, self.room, 2, None)),
            errors.NotInRoom,
        )


class NameTests(ChatTestCase):
    def test_rename(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        self.chat.join(alice, "python")
        self.chat.join(bob, "python")
        self.take(alice)
        self.take(bob)
        self.chat.rename(alice, "alicia")
        self.assertEqual(self.take(alice), [events.NickChanged("alicia", "alice")])
        self.assertEqual(self.take(bob), [events.Renamed("python", "alice", "alicia")])
        self.chat.rename(alice, "alicia")
        self.assertEqual(self.take(alice), [events.SameNick("alicia")])

    def test_logInDisplaces(self) -> None:
        chat = Chat(schedule=self.turns, registered={"bob"})
        guest = chat.connect(EventSession(self.renderer), "guest7")
        chat.log_in(guest, "bob")
        owner = chat.connect(EventSession(self.renderer), "guest8")
        session = guest.session
        assert isinstance(session, EventSession)
        self.turns.run()
        session.take()
        chat.log_in(owner, "bob")
        self.turns.run()
        self.assertEqual(
            session.take(),
            [events.Displaced("bob"), events.NickChanged("guest1", "bob")],
        )
        self.assertEqual((owner.nick, owner.account), ("bob", "bob"))


class EndTests(ChatTestCase):
    def test_quitSaysGoodbyeAndCloses(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        self.chat.join(alice, "python")
        self.chat.join(bob, "python")
        self.take(alice)
        self.take(bob)
        self.chat.quit(alice, "")
        self.assertEqual(self.sessions[alice].take(), [events.Goodbye()])
        self.assertTrue(self.sessions[alice].closed)
        self.assertEqual(self.take(bob), [events.Quit("python", "alice", "quit")])

    def test_dismissWithAnError(self) -> None:
        alice = self.connect("alice")
        refusal = events.Refused(errors.IdleTimeout(30))
        self.chat.dismiss(alice, refusal, "idle timeout")
        [told] = self.sessions[alice].take()
        self.assertIs(told, refusal)
        self.assertFalse(alice.connected)

    def test_closeAllRendersOncePerRenderer(self) -> None:
        members = [self.connect(f"m{n}") for n in range(5)]
        self.turns.run()
        before = len(self.renderer.rendered)
        self.chat.close_all(events.Closing())
        self.assertEqual(len(self.renderer.rendered), before + 1)
        for member in members:
            self.assertEqual(self.sessions[member].take(), [events.Closing()])
            self.assertTrue(self.sessions[member].closed)
