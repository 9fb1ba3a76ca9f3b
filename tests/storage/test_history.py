"""
Tests for room history in memory (L{chatservice.core.history}), and replay
and C{/history} through the protocol.
"""

from __future__ import annotations

from typing import get_args

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial import unittest

from chatservice.core.history import (
    ACTION,
    CODES,
    DEFAULT_REPLAY,
    HISTORY_MAX,
    KINDS,
    MESSAGE,
    Entry,
    History,
    Kind,
    decode_record,
    encode_record,
    stamp,
)
from chatservice.frontends.limits import Limits
from chatservice.frontends.line import wire
from tests.storage.helpers import AWKWARD_TEXTS, T0, Ticker, acted, batch, record, said
from tests.support.memory import Harness, discard

# What the sanitizer lets through: no C0 or C1 controls (tabs become
# spaces), and no surrogates, which cannot be encoded.
_NO_CONTROLS = st.characters(blacklist_categories=("Cc", "Cs"))


class RecordTests(unittest.SynchronousTestCase):
    """
    The history record: a kind letter, the sender, a space, the text and a
    newline.
    """

    def test_message(self) -> None:
        record = encode_record(MESSAGE, "alice", "good morning")
        self.assertEqual(record, b"malice good morning\n")
        self.assertEqual(
            decode_record(5.0, record), Entry(5.0, "alice", MESSAGE, "good morning")
        )

    def test_action(self) -> None:
        record = encode_record(ACTION, "bob", "waves at everyone")
        self.assertEqual(record, b"abob waves at everyone\n")
        self.assertEqual(
            decode_record(6.5, record),
            Entry(6.5, "bob", ACTION, "waves at everyone"),
        )

    def test_everyKindHasALetter(self) -> None:
        """
        Each kind has one ASCII letter of its own, and the letter gives the
        kind back.
        """
        self.assertEqual(set(CODES), set(get_args(Kind)))
        self.assertEqual(len(set(CODES.values())), len(CODES))
        for kind, code in CODES.items():
            self.assertTrue(code.isascii() and code.isalpha() and len(code) == 1)
            self.assertEqual(KINDS[code], kind)

    def test_awkwardText(self) -> None:
        """
        Text may hold what ended names in a wire line (C{> }, C{]}, C{<}),
        spaces, quotes, and any Unicode. Only the first space ends the
        sender.
        """
        for text in AWKWARD_TEXTS:
            for kind in (MESSAGE, ACTION):
                line = record("名前_1", kind, text)
                self.assertEqual(
                    decode_record(1.0, line), Entry(1.0, "名前_1", kind, text), line
                )

    def test_emptyActionText(self) -> None:
        self.assertEqual(
            decode_record(0.0, acted("dave", "")), Entry(0.0, "dave", ACTION, "")
        )

    @settings(deadline=None)
    @given(
        kind=st.sampled_from(get_args(Kind)),
        sender=st.text(_NO_CONTROLS.filter(lambda c: c != " "), min_size=1),
        text=st.text(_NO_CONTROLS),
    )
    def test_roundTrip(self, kind: Kind, sender: str, text: str) -> None:
        """
        Any sender without a space and any text without control characters
        (what names and the sanitizer allow) comes back as it was, from a
        record that is one line.
        """
        record = encode_record(kind, sender, text)
        self.assertEqual(record.count(b"\n"), 1)
        self.assertTrue(record.endswith(b"\n"))
        self.assertEqual(decode_record(T0, record), Entry(T0, sender, kind, text))


class StampTests(unittest.SynchronousTestCase):
    def test_format(self) -> None:
        """
        UTC, to the second, as C{YYYY-MM-DD HH:MM:SS}.
        """
        self.assertEqual(stamp(T0), "2026-11-24 09:15:02")
        self.assertEqual(stamp(0), "1970-01-01 00:00:00")

    def test_truncatesFractions(self) -> None:
        """
        A line is never shown as said later than it was.
        """
        self.assertEqual(stamp(T0 + 0.999), "2026-11-24 09:15:02")

    def test_historyLine(self) -> None:
        self.assertEqual(
            wire.history_line("lobby", stamp(T0), MESSAGE, "alice", "hi"),
            "[lobby] (2026-11-24 09:15:02) <alice> hi",
        )
        self.assertEqual(
            wire.history_line("lobby", stamp(T0), ACTION, "bob", "waves"),
            "[lobby] (2026-11-24 09:15:02) * bob waves",
        )


class HistoryTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Ticker()

    def lines(self, *texts: str) -> list[bytes]:
        return [said("alice", text) for text in texts]

    def test_recentOldestFirst(self) -> None:
        history = History(clock=self.clock)
        history.record("lobby", "lobby", self.lines("one", "two"))
        self.clock.now += 10
        history.record("lobby", "lobby", self.lines("three"))
        self.assertEqual(
            history.recent("lobby", 10),
            [
                Entry(T0, "alice", MESSAGE, "one"),
                Entry(T0, "alice", MESSAGE, "two"),
                Entry(T0 + 10, "alice", MESSAGE, "three"),
            ],
        )
        self.assertEqual([e.text for e in history.recent("lobby", 2)], ["two", "three"])
        self.assertEqual([e.text for e in history.recent("lobby", 1)], ["three"])

    def test_recentNothing(self) -> None:
        history = History(clock=self.clock)
        history.record("lobby", "lobby", self.lines("one"))
        self.assertEqual(history.recent("lobby", 0), [])
        self.assertEqual(history.recent("lobby", -5), [])
        self.assertEqual(history.recent("elsewhere", 10), [])

    def test_roomsApart(self) -> None:
        history = History(clock=self.clock)
        history.record("lobby", "lobby", self.lines("in lobby"))
        history.record("python", "Python", self.lines("in python"))
        self.assertEqual([e.text for e in history.recent("lobby", 9)], ["in lobby"])
        self.assertEqual([e.text for e in history.recent("python", 9)], ["in python"])

    def test_keep(self) -> None:
        """
        Only the last C{keep} lines of a room stay in memory.
        """
        history = History(keep=3, clock=self.clock)
        for i in range(5):
            self.clock.now = T0 + i
            history.record("lobby", "lobby", self.lines(f"line {i}"))
        self.assertEqual(
            [(e.time, e.text) for e in history.recent("lobby", 10)],
            [(T0 + 2, "line 2"), (T0 + 3, "line 3"), (T0 + 4, "line 4")],
        )

    def test_keepDefault(self) -> None:
        self.assertEqual(History().keep, HISTORY_MAX)

    def test_noPersistence(self) -> None:
        """
        Without persistence nothing waits to be written.
        """
        history = History(clock=self.clock)
        history.record("lobby", "lobby", self.lines("one"))
        self.assertIsNone(history.unwritten)
        self.assertEqual(history.take(), {})
        self.assertEqual(history.unwritten_lines(), 0)
        history.give_back({"lobby": batch(T0, "lobby", self.lines("x"))})
        self.assertIsNone(history.unwritten)

    def test_unwritten(self) -> None:
        """
        What is recorded waits for the writer, per room: the lines joined,
        how many, the room's name as shown and the time of the first.
        """
        history = History(clock=self.clock, persist=True)
        history.record("python", "Python", self.lines("a", "b"))
        self.clock.now += 5
        history.record("python", "Python", self.lines("c"))
        history.record("lobby", "lobby", self.lines("d"))
        unwritten = history.unwritten
        assert unwritten is not None
        self.assertEqual(list(unwritten), ["python", "lobby"])
        python = unwritten["python"]
        self.assertEqual(python.count, 3)
        self.assertEqual(python.room, "Python")
        self.assertEqual(python.time, T0)
        self.assertEqual(bytes(python.data), b"".join(self.lines("a", "b", "c")))
        self.assertEqual(unwritten["lobby"].count, 1)
        self.assertEqual(unwritten["lobby"].time, T0 + 5)
        self.assertEqual(history.unwritten_lines(), 4)

    def test_wake(self) -> None:
        """
        The writer is woken when lines are recorded and none were waiting,
        and only then.
        """
        history = History(clock=self.clock, persist=True)
        wakes: list[None] = []
        history.wake = lambda: wakes.append(None)
        history.record("lobby", "lobby", self.lines("a"))
        history.record("lobby", "lobby", self.lines("b"))
        history.record("python", "python", self.lines("c"))
        self.assertEqual(len(wakes), 1)
        history.take()
        history.record("lobby", "lobby", self.lines("d"))
        self.assertEqual(len(wakes), 2)

    def test_take(self) -> None:
        history = History(clock=self.clock, persist=True)
        history.record("lobby", "lobby", self.lines("a", "b"))
        taken = history.take()
        self.assertEqual(list(taken), ["lobby"])
        self.assertEqual(bytes(taken["lobby"].data), b"".join(self.lines("a", "b")))
        self.assertEqual(taken["lobby"].count, 2)
        self.assertEqual(history.unwritten, {})
        self.assertEqual(history.unwritten_lines(), 0)
        self.assertEqual(history.take(), {})
        # Taking does not touch what replay reads.
        self.assertEqual([e.text for e in history.recent("lobby", 9)], ["a", "b"])

    def test_giveBackGoesFirst(self) -> None:
        """
        Lines whose write failed go back in front of lines recorded since,
        keeping their time; rooms with nothing newer get theirs back as is.
        """
        history = History(clock=self.clock, persist=True)
        history.record("lobby", "lobby", self.lines("a", "b"))
        history.record("python", "python", self.lines("p"))
        taken = history.take()
        self.clock.now += 1
        history.record("lobby", "lobby", self.lines("c"))
        history.record("other", "other", self.lines("o"))
        history.give_back(taken)
        unwritten = history.unwritten
        assert unwritten is not None
        self.assertEqual(
            bytes(unwritten["lobby"].data), b"".join(self.lines("a", "b", "c"))
        )
        self.assertEqual(unwritten["lobby"].count, 3)
        self.assertEqual(unwritten["lobby"].time, T0)
        self.assertEqual(bytes(unwritten["python"].data), b"".join(self.lines("p")))
        self.assertEqual(unwritten["python"].count, 1)
        self.assertEqual(unwritten["other"].count, 1)
        self.assertEqual(unwritten["other"].time, T0 + 1)
        self.assertEqual(history.unwritten_lines(), 5)

    def test_giveBackTwice(self) -> None:
        """
        A write that fails again is put back in front again.
        """
        history = History(clock=self.clock, persist=True)
        history.record("lobby", "lobby", self.lines("a"))
        first = history.take()
        history.record("lobby", "lobby", self.lines("b"))
        history.give_back(first)
        second = history.take()
        history.record("lobby", "lobby", self.lines("c"))
        history.give_back(second)
        unwritten = history.unwritten
        assert unwritten is not None
        self.assertEqual(
            bytes(unwritten["lobby"].data), b"".join(self.lines("a", "b", "c"))
        )
        self.assertEqual(unwritten["lobby"].count, 3)

    def test_recordAfterGiveBackWhileWriteHoldsView(self) -> None:
        """
        A failed
        write (Store.insert) takes memoryviews of each room's buffer; if the
        failure is still referenced when the lines are given back (a log
        observer keeps it, or the thread pool has not let go yet) and the
        room has no newer lines, give_back hands back that very buffer, and
        the next record() in the room would grow it with C{+=} and raise
        BufferError. Recording must go on working.
        """
        history = History(clock=self.clock, persist=True)
        history.record("lobby", "lobby", self.lines("a"))
        taken = history.take()
        # What Store.insert holds while (and, through the traceback, after)
        # its write fails.
        held = memoryview(taken["lobby"].data)
        history.give_back(taken)
        try:
            history.record("lobby", "lobby", self.lines("b"))
        finally:
            held.release()
        unwritten = history.unwritten
        assert unwritten is not None
        self.assertEqual(bytes(unwritten["lobby"].data), b"".join(self.lines("a", "b")))

    def test_load(self) -> None:
        """
        Lines read back from the file come before lines recorded since, and
        count towards C{keep}.
        """
        history = History(keep=3, clock=self.clock, persist=True)
        history.load(
            [
                (T0 - 30, "lobby", said("old", "one")),
                (T0 - 20, "lobby", said("old", "two")),
                (T0 - 10, "python", acted("old", "waves")),
            ]
        )
        self.assertEqual(history.unwritten, {})
        history.record("lobby", "lobby", self.lines("three", "four"))
        self.assertEqual(
            [(e.time, e.sender, e.text) for e in history.recent("lobby", 9)],
            [(T0 - 20, "old", "two"), (T0, "alice", "three"), (T0, "alice", "four")],
        )
        self.assertEqual(
            history.recent("python", 9), [Entry(T0 - 10, "old", ACTION, "waves")]
        )


# Replay and /history through the protocol, in memory


class ReplayTests(unittest.SynchronousTestCase):
    """
    The protocol on a fake clock set to T0, with history in memory.
    """

    def start(
        self,
        replay: int = DEFAULT_REPLAY,
        keep: int = HISTORY_MAX,
        history: bool = True,
    ) -> Harness:
        made: list[History] = []

        def make(clock: Clock) -> History:
            made.append(History(keep=keep, clock=clock.seconds, persist=True))
            return made[0]

        harness = Harness(
            Limits(flood_rate=0), history=make if history else None, replay=replay
        )
        harness.advance_to(T0)
        self.history = made[0] if made else History(keep=keep, persist=True)
        return harness

    def block(self, room: str, *lines: str) -> list[str]:
        """
        What a replay of C{lines} of C{room} looks like.
        """
        return [
            f"*** Last {len(lines)} line(s) of {room}:",
            *lines,
            f"*** End of history of {room}.",
        ]

    def test_joinReplaysBeforeLiveLines(self) -> None:
        harness = self.start()
        a, b = harness.clients(2)
        a.say("/join python")
        a.say("first")
        harness.advance(65)
        a.say("/me waves > all ]")
        harness.advance(3600)
        a.say('it\'s "quoted" 😀')
        discard(a, b)
        b.say("/join python")
        self.assertEqual(
            b.take(),
            [
                "*** Now talking in python (2 members).",
                *self.block(
                    "python",
                    "[python] (2026-11-24 09:15:02) <guest1> first",
                    "[python] (2026-11-24 09:16:07) * guest1 waves > all ]",
                    '[python] (2026-11-24 10:16:07) <guest1> it\'s "quoted" 😀',
                ),
            ],
        )
        self.assertEqual(a.take(), ["[python] --> guest2 joined"])
        a.say("live")
        self.assertEqual(b.take(), ["[python] <guest1> live"])

    def test_replayLastN(self) -> None:
        harness = self.start(replay=2)
        a, b = harness.clients(2)
        a.lines("one", "two", "three")
        discard(a, b)
        c = harness.connect()
        self.assertEqual(
            c.take()[1:],
            self.block(
                "lobby",
                "[lobby] (2026-11-24 09:15:02) <guest1> two",
                "[lobby] (2026-11-24 09:15:02) <guest1> three",
            ),
        )

    def test_replayZero(self) -> None:
        harness = self.start(replay=0)
        a, b = harness.clients(2)
        a.lines("one", "two")
        a.say("/join python")
        a.say("three")
        discard(a, b)
        c = harness.connect()
        [welcome] = c.take()
        self.assertTrue(welcome.startswith("*** Welcome to chatservice"), welcome)
        c.say("/join python")
        self.assertEqual(c.take(), ["*** Now talking in python (2 members)."])
        # /history still shows it.
        c.say("/history")
        self.assertEqual(
            c.take(),
            self.block("python", "[python] (2026-11-24 09:15:02) <guest1> three"),
        )

    def test_defaultRoomOnConnect(self) -> None:
        """
        The room a newcomer is put in replays too, right after the welcome.
        """
        harness = self.start()
        a = harness.connect()
        a.lines("hello", "/me waves")
        discard(a)
        b = harness.connect()
        lines = b.take()
        self.assertTrue(lines[0].startswith("*** Welcome to chatservice, guest2!"))
        self.assertEqual(
            lines[1:],
            self.block(
                "lobby",
                "[lobby] (2026-11-24 09:15:02) <guest1> hello",
                "[lobby] (2026-11-24 09:15:02) * guest1 waves",
            ),
        )
        self.assertEqual(a.take(), ["[lobby] --> guest2 joined"])

    def test_noHistoryNoReplay(self) -> None:
        """
        Entering a room without history shows no history block.
        """
        harness = self.start()
        a = harness.connect()
        self.assertEqual(len(a.take()), 1)
        a.say("/join python")
        self.assertEqual(a.take(), ["*** Now talking in python (1 member)."])

    def test_lineSaidJustBeforeJoin(self) -> None:
        """
        A line said in the same reactor turn as someone joins reaches the
        joiner once, as history: the join moves it into history first.
        """
        harness = self.start()
        a, b = harness.clients(2)
        a.say("/join python")
        discard(a, b)
        # Received, not yet delivered: the turn has not ended.
        a.proto.dataReceived(b"just now\n")
        b.say("/join python")
        self.assertEqual(
            b.take(),
            [
                "*** Now talking in python (2 members).",
                *self.block(
                    "python", "[python] (2026-11-24 09:15:02) <guest1> just now"
                ),
            ],
        )

    def test_sendersNameAtTheTime(self) -> None:
        harness = self.start()
        a, b = harness.clients(2)
        a.lines("as guest", "/nick alice", "as alice")
        discard(a, b)
        c = harness.connect()
        self.assertEqual(
            c.take()[1:],
            self.block(
                "lobby",
                "[lobby] (2026-11-24 09:15:02) <guest1> as guest",
                "[lobby] (2026-11-24 09:15:02) <alice> as alice",
            ),
        )

    def test_rejoinedRoomReplaysAgain(self) -> None:
        """
        History outlives the room's members: a room emptied and entered
        again replays what was said in it, under its key.
        """
        harness = self.start()
        a = harness.connect()
        a.say("/join Python")
        a.say("before")
        a.say("/part Python")
        discard(a)
        self.assertNotIn("python", harness.chat.rooms)
        a.say("/join PYTHON")
        self.assertEqual(
            a.take(),
            [
                "*** Now talking in PYTHON (1 member).",
                *self.block("PYTHON", "[PYTHON] (2026-11-24 09:15:02) <guest1> before"),
            ],
        )

    def test_history(self) -> None:
        harness = self.start()
        a, b = harness.clients(2)
        a.lines("one", "two", "/me three")
        discard(a, b)
        b.say("/history")
        all_three = self.block(
            "lobby",
            "[lobby] (2026-11-24 09:15:02) <guest1> one",
            "[lobby] (2026-11-24 09:15:02) <guest1> two",
            "[lobby] (2026-11-24 09:15:02) * guest1 three",
        )
        self.assertEqual(b.take(), all_three)
        b.say("/history 2")
        self.assertEqual(
            b.take(),
            self.block(
                "lobby",
                "[lobby] (2026-11-24 09:15:02) <guest1> two",
                "[lobby] (2026-11-24 09:15:02) * guest1 three",
            ),
        )
        b.say("/history 1000")
        self.assertEqual(b.take(), all_three)
        # Only the asker sees it.
        self.assertEqual(a.take(), [])

    def test_historyOfCurrentRoom(self) -> None:
        harness = self.start()
        a = harness.connect()
        a.say("in lobby")
        a.say("/join python")
        a.say("in python")
        discard(a)
        a.say("/history")
        self.assertEqual(
            a.take(),
            self.block("python", "[python] (2026-11-24 09:15:02) <guest1> in python"),
        )

    def test_historyDefault(self) -> None:
        harness = self.start()
        a, b = harness.clients(2)
        a.lines(*(f"line {i}" for i in range(60)))
        discard(a, b)
        b.say("/history")
        lines = b.take()
        self.assertEqual(lines[0], "*** Last 50 line(s) of lobby:")
        self.assertEqual(len(lines), 52)
        self.assertEqual(lines[1], "[lobby] (2026-11-24 09:15:02) <guest1> line 10")
        self.assertEqual(lines[-2], "[lobby] (2026-11-24 09:15:02) <guest1> line 59")

    def test_historyAtMost500(self) -> None:
        """
        /history N shows at most 500 lines, however many are kept.
        """
        harness = self.start(keep=1000)
        a = harness.connect()
        discard(a)
        self.history.record(
            "lobby",
            "lobby",
            [said("bot", f"line {i}") for i in range(600)],
        )
        for n in ("500", "501", "1000", "99999999999999999999"):
            a.say(f"/history {n}")
            lines = a.take()
            self.assertEqual(lines[0], "*** Last 500 line(s) of lobby:", n)
            self.assertEqual(len(lines), 502, n)
            self.assertEqual(lines[1], "[lobby] (2026-11-24 09:15:02) <bot> line 100")
            self.assertEqual(lines[-2], "[lobby] (2026-11-24 09:15:02) <bot> line 599")
            self.assertEqual(lines[-1], "*** End of history of lobby.")

    def test_historyBadN(self) -> None:
        harness = self.start()
        a = harness.connect()
        a.say("something")
        discard(a)
        for argument in ("abc", "0", "-3", "1.5", "2 3", "ten"):
            a.say(f"/history {argument}")
            self.assertEqual(a.take(), ["!!! Usage: /history [N]"], argument)

    def test_historyEmpty(self) -> None:
        harness = self.start()
        a = harness.connect()
        a.say("/join Quiet")
        discard(a)
        a.say("/history")
        self.assertEqual(a.take(), ["*** No history in Quiet."])
        a.say("/history 5")
        self.assertEqual(a.take(), ["*** No history in Quiet."])

    def test_historyCountsLineSaidJustBefore(self) -> None:
        """
        A line said earlier in the same reactor turn (the same packet, or a
        paste) counts for /history, even when it is the room's only line.
        """
        harness = self.start()
        a = harness.connect()
        discard(a)
        a.lines("hello", "/history")
        self.assertEqual(
            a.take(),
            self.block("lobby", "[lobby] (2026-11-24 09:15:02) <guest1> hello"),
        )

    def test_historyWhenNotInRoom(self) -> None:
        harness = self.start()
        a = harness.connect()
        a.say("said")
        a.say("/part")
        discard(a)
        a.say("/history")
        self.assertEqual(a.take(), ["!!! You are not in any room; /join one first."])

    def test_serverWithoutHistory(self) -> None:
        harness = self.start(history=False)
        a, b = harness.clients(2)
        a.lines("not kept", "/me neither")
        discard(a, b)
        for command in ("/history", "/history 5", "/history abc"):
            b.say(command)
            self.assertEqual(b.take(), ["!!! This server keeps no history."], command)
        c = harness.connect()
        self.assertEqual(len(c.take()), 1)
        c.say("/join python")
        self.assertEqual(c.take(), ["*** Now talking in python (1 member)."])
        self.assertEqual(self.history.tails, {})
        self.assertEqual(self.history.unwritten, {})

    def test_onlyMessagesAndActionsRecorded(self) -> None:
        """
        Private messages, commands, joins, parts, nick changes and quits
        are not history.
        """
        harness = self.start()
        a, b = harness.clients(2)
        a.lines(
            "/msg guest2 a secret",
            "/nick alice",
            "/join python",
            "/part python",
            "/who",
            "/rooms",
            "/help",
        )
        b.say("/msg alice another secret")
        b.say("/quit bye")
        self.assertEqual(self.history.tails, {})
        self.assertEqual(self.history.unwritten, {})
        a.say("/history")
        self.assertEqual(a.take()[-1], "*** No history in lobby.")

    def test_actionRecorded(self) -> None:
        harness = self.start()
        a, b = harness.clients(2)
        a.say("/me waves at everyone")
        a.say("//not a command")
        self.assertEqual(
            self.history.recent("lobby", 10),
            [
                Entry(T0, "guest1", ACTION, "waves at everyone"),
                Entry(T0, "guest1", MESSAGE, "/not a command"),
            ],
        )
        discard(a, b)
        c = harness.connect()
        self.assertEqual(
            c.take()[1:],
            self.block(
                "lobby",
                "[lobby] (2026-11-24 09:15:02) * guest1 waves at everyone",
                "[lobby] (2026-11-24 09:15:02) <guest1> /not a command",
            ),
        )

    def test_recordedOncePerTurn(self) -> None:
        """
        The lines one room got in a turn are recorded together, for the
        writer, under the room's key and with its name as shown, and the
        writer is woken once.
        """
        harness = self.start()
        a = harness.connect()
        a.say("/join Python")
        wakes: list[None] = []
        self.history.wake = lambda: wakes.append(None)
        a.lines("one", "two", "/me three")
        unwritten = self.history.take()
        self.assertEqual(list(unwritten), ["python"])
        self.assertEqual(unwritten["python"].room, "Python")
        self.assertEqual(unwritten["python"].count, 3)
        self.assertEqual(
            bytes(unwritten["python"].data),
            said("guest1", "one") + said("guest1", "two") + acted("guest1", "three"),
        )
        self.assertEqual(len(wakes), 1)
