"""
Room operators and topics through the line protocol: C{/topic}, C{/kick},
C{/op}, C{/deop}, and C{/who}'s marks, as a line client sees them, in
memory.
"""

from __future__ import annotations

from twisted.trial import unittest

from chatservice.core.history import History
from chatservice.core.operators import TOPIC_MAX
from tests.support.memory import Connection, Harness

# 2026-11-24 09:15:02 UTC
WHEN = 1795511702.0


class ThreeClientsTestCase(unittest.SynchronousTestCase):
    """
    alice, bob and carol, line clients each test sets up: what each said
    is taken, and refusals are checked, for the three of them at once.
    """

    alice: Connection
    bob: Connection
    carol: Connection

    def everyone(self) -> list[list[str]]:
        return [c.take() for c in (self.alice, self.bob, self.carol)]

    def assertNothingElse(self) -> None:
        self.assertEqual(self.everyone(), [[], [], []])

    def assertRefused(self, cases: list[tuple[Connection, str, str]]) -> None:
        """
        Each (client, line, refusal): the line gets the refusal, told to
        who sent it only.
        """
        for client, line, refusal in cases:
            client.say(line)
            self.assertEqual(client.take(), [refusal], line)
            self.assertNothingElse()


class OperatorTestCase(ThreeClientsTestCase):
    """
    alice, bob and carol in the lobby; alice created python, bob joined it
    after, carol is only in the lobby. Everyone's output is taken.
    """

    def setUp(self) -> None:
        self.harness = Harness(history=lambda clock: History(clock=clock.seconds))
        self.harness.advance_to(WHEN)
        self.alice, self.bob, self.carol = self.harness.clients(3)
        for client, nick in zip(
            (self.alice, self.bob, self.carol), ("alice", "bob", "carol"), strict=True
        ):
            client.say(f"/nick {nick}")
        self.alice.say("/join python")
        self.bob.say("/join python")
        self.everyone()

    def who(self, client: Connection) -> str:
        client.say("/who python")
        [line] = client.take()
        return line


class WhoTests(OperatorTestCase):
    def test_creatorMarked(self) -> None:
        self.assertEqual(self.who(self.carol), "*** python (2 members): @alice, bob")
        self.carol.say("/who lobby")
        self.assertEqual(
            self.carol.take(), ["*** lobby (3 members): @alice, bob, carol"]
        )


class TopicTests(OperatorTestCase):
    def test_setShowAndEnter(self) -> None:
        """
        The operator sets the topic: the room, the setter included, sees it
        set; asking shows it; who enters sees it after the room's greeting
        and before its history.
        """
        self.alice.say("hello")
        self.alice.say("/topic All about \x1b[31mPython")
        line = "[python] --- alice set the topic: All about Python"
        self.assertEqual(self.alice.take(), [line])
        self.assertEqual(self.bob.take(), ["[python] <alice> hello", line])
        self.bob.say("/topic")
        topic = (
            "*** Topic of python: All about Python"
            " (set by alice at 2026-11-24 09:15:02)"
        )
        self.assertEqual(self.bob.take(), [topic])
        self.carol.say("/join python")
        self.assertEqual(
            self.carol.take(),
            [
                "*** Now talking in python (3 members).",
                topic,
                "*** Last 1 line(s) of python:",
                "[python] (2026-11-24 09:15:02) <alice> hello",
                "*** End of history of python.",
            ],
        )

    def test_noTopic(self) -> None:
        self.bob.say("/topic")
        self.assertEqual(self.bob.take(), ["*** python has no topic."])
        self.carol.say("/join python")
        self.assertEqual(self.carol.take(), ["*** Now talking in python (3 members)."])

    def test_clear(self) -> None:
        self.alice.say("/topic hi")
        self.everyone()
        self.alice.say("/topic -")
        cleared = "[python] --- alice cleared the topic"
        self.assertEqual(self.everyone(), [[cleared], [cleared], []])
        self.bob.say("/topic")
        self.assertEqual(self.bob.take(), ["*** python has no topic."])

    def test_outlivesRoom(self) -> None:
        """
        The topic stays with the room's history when everyone has left.
        """
        self.alice.say("/topic hi")
        self.alice.say("/part python")
        self.bob.say("/part python")
        self.everyone()
        self.carol.say("/join Python")
        self.assertEqual(
            self.carol.take()[:2],
            [
                "*** Now talking in Python (1 member).",
                "*** Topic of Python: hi (set by alice at 2026-11-24 09:15:02)",
            ],
        )

    def test_notOperator(self) -> None:
        self.bob.say("/topic mine")
        self.assertEqual(self.bob.take(), ["!!! You are not an operator of python."])
        self.assertNothingElse()
        self.bob.say("/topic")
        self.assertEqual(self.bob.take(), ["*** python has no topic."])

    def test_tooLong(self) -> None:
        self.alice.say("/topic " + "x" * (TOPIC_MAX + 1))
        self.assertEqual(
            self.alice.take(),
            ["!!! Topic too long (the limit is 390 characters); it was not set."],
        )
        self.assertNothingElse()
        self.alice.say("/topic " + "é" * TOPIC_MAX)
        self.assertEqual(
            self.bob.take(), [f"[python] --- alice set the topic: {'é' * TOPIC_MAX}"]
        )

    def test_noRoom(self) -> None:
        self.carol.say("/part")
        self.carol.take()
        self.carol.say("/topic")
        self.assertEqual(
            self.carol.take(), ["!!! You are not in any room; /join one first."]
        )


class KickTests(OperatorTestCase):
    def test_kick(self) -> None:
        """
        Everyone in the room sees the kick, the one kicked too; its next
        line goes to the room it joined before, and it is told so first.
        """
        self.alice.say("/kick bob spamming   links")
        kicked = "[python] <-- bob was kicked by alice (spamming   links)"
        self.assertEqual(self.everyone(), [[kicked], [kicked], []])
        self.assertEqual(self.who(self.carol), "*** python (1 member): @alice")
        self.bob.say("still here?")
        self.assertEqual(self.bob.take(), ["*** Now talking in lobby."])
        self.assertEqual(self.carol.take(), ["[lobby] <bob> still here?"])
        self.assertEqual(self.alice.take(), ["[lobby] <bob> still here?"])
        self.bob.say("again")
        self.assertEqual(self.bob.take(), [])

    def test_noReason(self) -> None:
        self.alice.say("/kick BOB")
        self.assertEqual(self.bob.take(), ["[python] <-- bob was kicked by alice"])

    def test_kickedOutOfEveryRoom(self) -> None:
        """
        Kicked out of the only room it was in, a member is told to join one
        when it next talks.
        """
        self.bob.say("/part lobby")
        self.bob.take()
        self.alice.say("/kick bob")
        self.bob.take()
        self.bob.say("anyone?")
        self.assertEqual(
            self.bob.take(), ["!!! You are not in any room; /join one first."]
        )

    def test_refused(self) -> None:
        """
        Each refusal is told to who asked only, and changes nothing.
        """
        cases = [
            (self.bob, "/kick alice", "!!! You are not an operator of python."),
            (self.alice, "/kick zed", "!!! No such nickname: zed."),
            (self.alice, "/kick carol", "!!! carol is not in python."),
            (self.alice, "/kick", "!!! Usage: /kick NICK [REASON]"),
        ]
        self.assertRefused(cases)
        self.assertEqual(self.who(self.carol), "*** python (2 members): @alice, bob")


class OpTests(OperatorTestCase):
    def test_opAndDeop(self) -> None:
        self.alice.say("/op bob")
        opped = "[python] --- alice made bob an operator"
        self.assertEqual(self.everyone(), [[opped], [opped], []])
        self.assertEqual(self.who(self.carol), "*** python (2 members): @alice, @bob")
        self.bob.say("/deop alice")
        deopped = "[python] --- bob took operator status from alice"
        self.assertEqual(self.everyone(), [[deopped], [deopped], []])
        self.alice.say("/topic mine")
        self.assertEqual(self.alice.take(), ["!!! You are not an operator of python."])

    def test_unchanged(self) -> None:
        self.alice.say("/op alice")
        self.alice.say("/deop bob")
        self.assertEqual(
            self.alice.take(),
            [
                "*** alice is an operator of python already.",
                "*** bob is not an operator of python.",
            ],
        )
        self.assertNothingElse()

    def test_renameKeepsStatus(self) -> None:
        self.alice.say("/nick alicia")
        self.everyone()
        self.assertEqual(self.who(self.carol), "*** python (2 members): @alicia, bob")

    def test_partDropsStatus(self) -> None:
        self.alice.say("/part")
        self.alice.say("/join python")
        self.everyone()
        self.assertEqual(self.who(self.carol), "*** python (2 members): bob, alice")

    def test_refused(self) -> None:
        cases = [
            (self.bob, "/op bob", "!!! You are not an operator of python."),
            (self.bob, "/deop alice", "!!! You are not an operator of python."),
            (self.alice, "/op zed", "!!! No such nickname: zed."),
            (self.alice, "/deop zed", "!!! No such nickname: zed."),
            (self.alice, "/op carol", "!!! carol is not in python."),
            (self.alice, "/op", "!!! Usage: /op NICK"),
            (self.alice, "/op bob carol", "!!! Usage: /op NICK"),
            (self.alice, "/deop", "!!! Usage: /deop NICK"),
        ]
        self.assertRefused(cases)
        self.assertEqual(self.who(self.carol), "*** python (2 members): @alice, bob")


class HelpTests(OperatorTestCase):
    def test_help(self) -> None:
        self.carol.say("/help topic")
        self.assertEqual(
            self.carol.take(),
            [
                "*** /topic [TEXT]: Show the topic of your current room, or (as "
                "its operator) set it to TEXT; '/topic -' clears it."
            ],
        )
