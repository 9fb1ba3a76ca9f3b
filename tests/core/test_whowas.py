"""
The record of departed nicknames, bounded, newest first, and kept by the
chat as members quit and rename.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chatservice.core.chat import Chat
from chatservice.core.rooms import Member
from chatservice.core.whowas import Departed, Whowas
from tests.core.test_chat import EventRenderer, EventSession


class IdentifiedSession(EventSession):
    """A session whose client gave a user name and real name."""

    identity = ("auser", "A Real Name")


class WhowasTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.renderer = EventRenderer()

    def member(self, nick: str) -> Member:
        return Member(nick, EventSession(self.renderer))

    def test_newestFirst(self) -> None:
        whowas = Whowas()
        whowas.record(self.member("Bob"), 1.0)
        whowas.record(Member("bob", IdentifiedSession(self.renderer)), 2.0)
        self.assertEqual(
            whowas.lookup("BOB"),
            [
                Departed("bob", "auser", "A Real Name", 2.0),
                Departed("Bob", "Bob", "Bob", 1.0),
            ],
        )
        self.assertEqual([d.when for d in whowas.lookup("bob", 1)], [2.0])
        self.assertEqual(len(whowas.lookup("bob", 0)), 2)
        self.assertEqual(len(whowas.lookup("bob", -1)), 2)
        self.assertEqual(whowas.lookup("nobody"), [])

    def test_bounded(self) -> None:
        """
        A few entries per nickname, and a fixed number of nicknames: the
        one left longest ago goes first.
        """
        whowas = Whowas(nicks=2, per_nick=3)
        for when in range(5):
            whowas.record(self.member("a"), float(when))
        self.assertEqual([d.when for d in whowas.lookup("a")], [4.0, 3.0, 2.0])
        whowas.record(self.member("b"), 5.0)
        whowas.record(self.member("a"), 6.0)
        whowas.record(self.member("c"), 7.0)
        self.assertEqual(whowas.lookup("b"), [])
        self.assertEqual([d.when for d in whowas.lookup("a")], [6.0, 4.0, 3.0])
        self.assertEqual(len(whowas.lookup("c")), 1)


class ChatKeepsWhowasTests(SynchronousTestCase):
    def test_quitAndRename(self) -> None:
        now = [100.0]
        chat = Chat(clock=lambda: now[0])
        renderer = EventRenderer()
        alice = chat.connect(EventSession(renderer), "alice")
        chat.rename(alice, "alicia")
        now[0] = 200.0
        chat.disconnect(alice, "gone")
        self.assertEqual(
            chat.whowas.lookup("alice"), [Departed("alice", "alice", "alice", 100.0)]
        )
        self.assertEqual(
            chat.whowas.lookup("alicia"),
            [Departed("alicia", "alicia", "alicia", 200.0)],
        )
