"""
Tests for room history: L{chatservice.core.history} (the tails in memory),
L{chatservice.storage.database} (the SQLite file, its migrations and the writer
service), replay and C{/history} through the protocol, and the installed
C{twistd chat} starting, refusing to start and restarting on a database.
"""

from __future__ import annotations

import calendar
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import ILogObserver, LogEvent, capturedLogs, globalLogPublisher
from twisted.trial import unittest
from zope.interface import implementer

from chatservice.core import sanitize
from chatservice.core.accounts import Account
from chatservice.core.history import (
    ACTION,
    DEFAULT_REPLAY,
    HISTORY_MAX,
    MESSAGE,
    Entry,
    History,
    Unwritten,
    parse,
    stamp,
)
from chatservice.frontends.limits import Limits
from chatservice.frontends.line import wire
from chatservice.frontends.line.protocol import ChatFactory
from chatservice.storage import database as database_module
from chatservice.storage.database import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Database,
    DatabaseError,
    Store,
    open_store,
)
from tests.support.helpers import (
    TIMEOUT,
    TWISTD,
    ServerProcess,
    SocketClient,
    deferred_test,
    make_temp_dir,
    read_until,
)
from tests.support.memory import Harness, discard

# The example in docs/protocol.md: 2026-11-24 09:15:02 UTC.
T0 = float(calendar.timegm((2026, 11, 24, 9, 15, 2, 0, 0, 0)))

STAMPED = re.compile(
    rb"^\[(?P<room>[^\]]+)\] \((?P<when>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\) "
    rb"(?:<(?P<nick>[^>]+)> |\* (?P<actor>\S+) )(?P<text>.*)\r\n$"
)


def message(room: str, nick: str, text: str) -> bytes:
    return wire.encode(wire.message(room, nick, text))


def action(room: str, nick: str, text: str) -> bytes:
    return wire.encode(wire.action(room, nick, text))


def wire_line(room: str, nick: str, kind: str, text: str) -> bytes:
    return (message if kind == MESSAGE else action)(room, nick, text)


def batch(when: float, room: str, lines: list[bytes]) -> Unwritten:
    """
    Lines of one room as the writer takes them from L{History}.
    """
    unwritten = Unwritten(when, room)
    unwritten.data += b"".join(lines)
    unwritten.count = len(lines)
    return unwritten


def new_store(testcase: unittest.SynchronousTestCase) -> tuple[Store, Path]:
    """
    A store on a new file in a temporary directory, closed in cleanup.
    """
    path = make_temp_dir(testcase) / "chat.sqlite3"
    store = open_store(str(path))
    testcase.addCleanup(store.close)
    return store, path


def in_order(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """
    Rows of the messages view whose first column is the chunk, put in the
    order the lines were said: chunks by id, and (a stable sort) the lines
    of a chunk in the order the view gives them, without the chunk column.
    """
    return [row[1:] for row in sorted(rows, key=lambda row: row[0])]


def read_file(path: Path, query: str, *args: object) -> list[tuple[Any, ...]]:
    """
    Run C{query} on the SQLite file at C{path} with a connection of the
    test's own, as a person with the sqlite3 tool would.
    """
    db = sqlite3.connect(str(path))
    try:
        return db.execute(query, args).fetchall()
    finally:
        db.close()


# History in memory


class ParseTests(unittest.SynchronousTestCase):
    def test_message(self) -> None:
        self.assertEqual(
            parse(5.0, message("lobby", "alice", "good morning")),
            Entry(5.0, "alice", MESSAGE, "good morning"),
        )

    def test_action(self) -> None:
        self.assertEqual(
            parse(6.5, action("lobby", "bob", "waves at everyone")),
            Entry(6.5, "bob", ACTION, "waves at everyone"),
        )

    def test_awkwardText(self) -> None:
        """
        Text may hold what ends names in a wire line: C{> }, C{]}, C{<},
        quotes; and any Unicode. Only the first of each ends the name.
        """
        texts = [
            "a > b",
            "> quoted reply",
            "[lobby] <mallory> fake",
            "] closing",
            "it's \"quoted\" and 'single'",
            "emoji 😀🎉 and 日本語",
            "'); DROP TABLE history; --",
            "  leading spaces",
        ]
        for text in texts:
            for kind in (MESSAGE, ACTION):
                line = wire_line("py-room", "名前_1", kind, text)
                self.assertEqual(
                    parse(1.0, line), Entry(1.0, "名前_1", kind, text), line
                )

    def test_emptyActionText(self) -> None:
        self.assertEqual(
            parse(0.0, action("lobby", "dave", "")), Entry(0.0, "dave", ACTION, "")
        )


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


class Ticker:
    """
    A clock for L{History} that the test moves.
    """

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class HistoryTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Ticker()

    def lines(self, *texts: str, room: str = "lobby") -> list[bytes]:
        return [message(room, "alice", text) for text in texts]

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
        history.record("python", "Python", self.lines("in python", room="Python"))
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
        history.record("python", "Python", self.lines("a", "b", room="Python"))
        self.clock.now += 5
        history.record("python", "Python", self.lines("c", room="Python"))
        history.record("lobby", "lobby", self.lines("d"))
        unwritten = history.unwritten
        assert unwritten is not None
        self.assertEqual(list(unwritten), ["python", "lobby"])
        python = unwritten["python"]
        self.assertEqual(python.count, 3)
        self.assertEqual(python.room, "Python")
        self.assertEqual(python.time, T0)
        self.assertEqual(
            bytes(python.data), b"".join(self.lines("a", "b", "c", room="Python"))
        )
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
        history.record("python", "python", self.lines("c", room="python"))
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
        history.record("python", "python", self.lines("p", room="python"))
        taken = history.take()
        self.clock.now += 1
        history.record("lobby", "lobby", self.lines("c"))
        history.record("other", "other", self.lines("o", room="other"))
        history.give_back(taken)
        unwritten = history.unwritten
        assert unwritten is not None
        self.assertEqual(
            bytes(unwritten["lobby"].data), b"".join(self.lines("a", "b", "c"))
        )
        self.assertEqual(unwritten["lobby"].count, 3)
        self.assertEqual(unwritten["lobby"].time, T0)
        self.assertEqual(
            bytes(unwritten["python"].data), b"".join(self.lines("p", room="python"))
        )
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
                (T0 - 30, "lobby", message("lobby", "old", "one")),
                (T0 - 20, "lobby", message("lobby", "old", "two")),
                (T0 - 10, "python", action("python", "old", "waves")),
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


# The SQLite file


ODD_LINES: list[tuple[str, str, str]] = [
    ("alice", MESSAGE, "it's \"quoted\" and 'single'"),
    ("bob", MESSAGE, "'); DROP TABLE history; --"),
    ("robert", MESSAGE, 'Robert"); DELETE FROM accounts; --'),
    ("名前", MESSAGE, "日本語のテキスト、中文 한국어"),
    ("carol", MESSAGE, "emoji 😀🎉👍🏽 and a ZWJ family 👨‍👩‍👧"),
    ("dave", ACTION, ""),
    ("erin", MESSAGE, "a > b ] c <d> [e] * f"),
    ("frank", ACTION, "waves > everyone ] loudly"),
    ("grace", MESSAGE, "x" * 4000),
    ("heidi", MESSAGE, "%s %d ? ?1 :name @x $y"),
]


class StoreTests(unittest.SynchronousTestCase):
    def test_newFile(self) -> None:
        """
        A new file gets the whole schema, its version, and WAL mode.
        """
        store, path = new_store(self)
        db = store.connection
        self.assertEqual(
            db.execute("PRAGMA user_version").fetchone(), (SCHEMA_VERSION,)
        )
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone(), ("wal",))
        objects = set(
            db.execute(
                "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            )
        )
        self.assertTrue(
            {("table", "history"), ("table", "accounts"), ("view", "messages")}
            <= objects,
            objects,
        )
        self.assertEqual(store.migrate(), SCHEMA_VERSION)
        store.close()
        # Both stay with the file.
        self.assertEqual(read_file(path, "PRAGMA user_version"), [(SCHEMA_VERSION,)])
        self.assertEqual(read_file(path, "PRAGMA journal_mode"), [("wal",)])

    def test_reopen(self) -> None:
        """
        A file at the current version is opened as it is.
        """
        store, path = new_store(self)
        store.insert({"lobby": batch(T0, "lobby", [message("lobby", "a", "kept")])})
        store.close()
        with capturedLogs() as events:
            again = open_store(str(path))
        self.addCleanup(again.close)
        self.assertEqual(
            [e for e in events if "Migrated" in e.get("log_format", "")], []
        )
        self.assertEqual(again.tails(5), [(T0, "lobby", message("lobby", "a", "kept"))])

    def test_memory(self) -> None:
        store = open_store(":memory:")
        self.addCleanup(store.close)
        self.assertEqual(
            store.connection.execute("PRAGMA user_version").fetchone(),
            (SCHEMA_VERSION,),
        )
        store.insert({"lobby": batch(T0, "lobby", [message("lobby", "a", "hi")])})
        self.assertEqual(store.tails(1), [(T0, "lobby", message("lobby", "a", "hi"))])

    def test_oneServerPerFile(self) -> None:
        """
        The file stays locked while a store has it open.
        """
        store, path = new_store(self)
        with self.assertRaises(DatabaseError) as caught:
            open_store(str(path))
        reason = str(caught.exception)
        self.assertIn(str(path), reason)
        self.assertIn("locked", reason)
        self.assertIn("another chat server", reason)
        store.close()
        open_store(str(path)).close()

    def test_messagesView(self) -> None:
        """
        The view gives one row per line, exactly as said, whatever the text.
        """
        store, path = new_store(self)
        room = "café-日本"
        store.insert(
            {
                "café-日本": batch(
                    T0,
                    room,
                    [
                        wire_line(room, nick, kind, text)
                        for nick, kind, text in ODD_LINES
                    ],
                )
            }
        )
        self.assertEqual(
            store.connection.execute(
                "SELECT time, room, sender, kind, text FROM messages"
            ).fetchall(),
            [(T0, room, nick, kind, text) for nick, kind, text in ODD_LINES],
        )
        store.close()
        # Nothing in the text was run as SQL.
        self.assertEqual(read_file(path, "SELECT count(*) FROM history"), [(1,)])
        self.assertEqual(
            read_file(path, "SELECT sum(count) FROM history"), [(len(ODD_LINES),)]
        )

    def test_tailsRoundTrip(self) -> None:
        """
        What is written is read back byte for byte, and parses to what was
        said.
        """
        store, _ = new_store(self)
        room = "café-日本"
        lines = [wire_line(room, nick, kind, text) for nick, kind, text in ODD_LINES]
        store.insert({"café-日本": batch(T0, room, lines)})
        tails = store.tails(len(lines))
        self.assertEqual(tails, [(T0, "café-日本", line) for line in lines])
        self.assertEqual(
            [parse(when, line) for when, _, line in tails],
            [Entry(T0, nick, kind, text) for nick, kind, text in ODD_LINES],
        )

    def test_messagesViewKeepsOrderAcrossChunks(self) -> None:
        """
        The recursive split walks every chunk breadth first; a plain
        C{SELECT ... FROM messages} (the query docs/protocol.md shows) must
        still give the lines in the order they were said.
        """
        store, path = new_store(self)
        said = []
        for chunk in range(3):
            lines = [f"chunk {chunk} line {i}" for i in range(3)]
            said += lines
            store.insert(
                {
                    "lobby": batch(
                        T0 + chunk, "lobby", [message("lobby", "a", t) for t in lines]
                    )
                }
            )
        store.close()
        self.assertEqual(
            [
                text
                for (text,) in read_file(
                    path, "SELECT text FROM messages WHERE room = 'lobby'"
                )
            ],
            said,
        )

    def test_bigBatchIsChunked(self) -> None:
        """
        A room's batch bigger than CHUNK_BYTES is stored as several chunks,
        cut at line ends, with the right counts, and read back in order.
        """
        store, path = new_store(self)
        lines = [message("lobby", "a", f"{i:04d} " + "y" * 3000) for i in range(20)]
        store.insert({"lobby": batch(T0, "lobby", lines)})
        rows = store.connection.execute(
            "SELECT count, lines FROM history ORDER BY id"
        ).fetchall()
        self.assertGreater(len(rows), 1)
        for count, blob in rows:
            self.assertTrue(blob.endswith(b"\r\n"))
            self.assertEqual(count, blob.count(b"\r\n"))
        self.assertEqual(b"".join(blob for _, blob in rows), b"".join(lines))
        self.assertEqual([line for _, _, line in store.tails(20)], lines)
        store.close()
        self.assertEqual(
            in_order(read_file(path, "SELECT chunk, text FROM messages")),
            [(f"{i:04d} " + "y" * 3000,) for i in range(20)],
        )

    def test_tails(self) -> None:
        """
        At least the last C{keep} lines of every room, in whole chunks,
        oldest first, each with the time of its chunk.
        """
        store, _ = new_store(self)
        lobby = [message("lobby", "a", f"lobby {i}") for i in range(7)]
        store.insert({"lobby": batch(T0, "lobby", lobby[:3])})
        store.insert(
            {
                "lobby": batch(T0 + 1, "lobby", lobby[3:5]),
                "python": batch(T0 + 1, "Python", [action("Python", "b", "waves")]),
            }
        )
        store.insert({"lobby": batch(T0 + 2, "lobby", lobby[5:])})
        times = [T0] * 3 + [T0 + 1] * 2 + [T0 + 2] * 2
        tails = store.tails(3)
        got = [(when, line) for when, key, line in tails if key == "lobby"]
        self.assertGreaterEqual(len(got), 3)
        self.assertEqual(got, list(zip(times, lobby, strict=True))[-len(got) :])
        self.assertEqual(
            [(when, line) for when, key, line in tails if key == "python"],
            [(T0 + 1, action("Python", "b", "waves"))],
        )
        everything = store.tails(100)
        self.assertEqual(
            [(when, line) for when, key, line in everything if key == "lobby"],
            list(zip(times, lobby, strict=True)),
        )

    def test_emptyTails(self) -> None:
        store, _ = new_store(self)
        self.assertEqual(store.tails(10), [])

    def fill(self, store: Store) -> None:
        """
        lobby: chunks of 2 lines at T0, T0 + 100 and T0 + 200; python: one
        chunk of 1 line at T0 + 50.
        """
        for i, when in enumerate([T0, T0 + 100, T0 + 200]):
            store.insert(
                {
                    "lobby": batch(
                        when,
                        "lobby",
                        [message("lobby", "a", f"{i}.{j}") for j in range(2)],
                    )
                }
            )
            if i == 0:
                store.insert(
                    {"python": batch(T0 + 50, "python", [message("python", "b", "p")])}
                )

    def texts(self, store: Store, room: str) -> list[str]:
        return [
            parse(when, line).text
            for when, key, line in store.tails(1000)
            if key == room
        ]

    def test_pruneMaxPerRoom(self) -> None:
        """
        Each room keeps at least its last N lines; older whole chunks go.
        """
        store, _ = new_store(self)
        self.fill(store)
        self.assertEqual(store.prune(3, 0), 2)
        self.assertEqual(self.texts(store, "lobby"), ["1.0", "1.1", "2.0", "2.1"])
        self.assertEqual(self.texts(store, "python"), ["p"])
        self.assertEqual(store.prune(3, 0), 0)
        self.assertEqual(store.prune(2, 0), 2)
        self.assertEqual(self.texts(store, "lobby"), ["2.0", "2.1"])
        self.assertEqual(store.prune(1, 0), 0)
        self.assertEqual(self.texts(store, "lobby"), ["2.0", "2.1"])

    def test_pruneBefore(self) -> None:
        """
        Chunks dated before C{before} go, in every room.
        """
        store, _ = new_store(self)
        self.fill(store)
        self.assertEqual(store.prune(0, T0 + 100), 3)
        self.assertEqual(self.texts(store, "lobby"), ["1.0", "1.1", "2.0", "2.1"])
        self.assertEqual(self.texts(store, "python"), [])
        self.assertEqual(store.prune(0, T0 + 1000), 4)
        self.assertEqual(store.tails(1000), [])

    def test_pruneOff(self) -> None:
        store, _ = new_store(self)
        self.fill(store)
        self.assertEqual(store.prune(0, 0), 0)
        self.assertEqual(len(store.tails(1000)), 7)

    def test_pruneBoth(self) -> None:
        store, _ = new_store(self)
        self.fill(store)
        self.assertEqual(store.prune(1, T0 + 60), 2 + 1 + 2)
        self.assertEqual(self.texts(store, "lobby"), ["2.0", "2.1"])

    def test_accountsRoundTrip(self) -> None:
        """
        Accounts are stored with parameters: quotes and SQL in them are
        kept exactly, and survive reopening.
        """
        store, path = new_store(self)
        nick = "O'Brien\"; DROP TABLE accounts; --"
        hashed = "$argon2id$v=19$m=65536,t=3,p=4$'quote\"d'$); DELETE FROM history; --"
        store.save_account("o'brien", nick, hashed, T0)
        store.save_account("名前", "名前", "h2", T0 + 1)
        store.close()
        again = open_store(str(path))
        self.addCleanup(again.close)
        self.assertEqual(
            again.accounts(),
            {"o'brien": Account(nick, hashed), "名前": Account("名前", "h2")},
        )
        # Saving again changes the hash, not the name or creation time.
        again.save_account("o'brien", "other", "new hash", T0 + 99)
        self.assertEqual(again.accounts()["o'brien"], Account(nick, "new hash"))
        self.assertEqual(
            again.connection.execute(
                "SELECT created FROM accounts WHERE nick_key = ?", ("o'brien",)
            ).fetchall(),
            [(T0,)],
        )

    def test_nulNeverReachesHistory(self) -> None:
        """
        NUL (which SQLite text functions stop at) is stripped from what
        clients send, so no stored line holds one.
        """
        self.assertEqual(sanitize.clean(b"nul\x00here"), "nulhere")
        harness = Harness(Limits(flood_rate=0))
        history = History(clock=harness.clock.seconds, persist=True)
        harness.factory = ChatFactory(
            reactor=harness.clock, limits=harness.factory.limits, history=history
        )
        a = harness.connect()
        a.send(b"nul\x00here\n/me also\x00nul\n")
        unwritten = history.take()
        self.assertNotIn(b"\x00", bytes(unwritten["lobby"].data))
        store, _ = new_store(self)
        store.insert(unwritten)
        self.assertEqual(
            store.connection.execute("SELECT kind, text FROM messages").fetchall(),
            [(MESSAGE, "nulhere"), (ACTION, "alsonul")],
        )


VERSION_1_CHUNK = (
    b"[lobby] <alice> hi\r\n[lobby] * bob waves\r\n[lobby] <alice> 'quoted'\r\n"
)
VERSION_1_ENTRIES = [
    Entry(T0, "alice", MESSAGE, "hi"),
    Entry(T0, "bob", ACTION, "waves"),
    Entry(T0, "alice", MESSAGE, "'quoted'"),
]


def version_1_file(path: Path) -> Path:
    """
    A file as the first release of history left it: schema version 1, no
    accounts table, one chunk of lobby history.
    """
    db = sqlite3.connect(str(path), isolation_level=None)
    try:
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO history (time, room_key, room, count, lines)"
            " VALUES (?, ?, ?, ?, ?)",
            (T0, "lobby", "lobby", 3, VERSION_1_CHUNK),
        )
    finally:
        db.close()
    return path


class MigrationTests(unittest.SynchronousTestCase):
    def test_fromVersion1(self) -> None:
        path = version_1_file(make_temp_dir(self) / "old.sqlite3")
        with capturedLogs() as events:
            store = open_store(str(path))
        self.addCleanup(store.close)
        db = store.connection
        self.assertEqual(
            db.execute("PRAGMA user_version").fetchone(), (SCHEMA_VERSION,)
        )
        self.assertEqual(
            db.execute(
                "SELECT name FROM sqlite_master"
                " WHERE type = 'table' AND name = 'accounts'"
            ).fetchall(),
            [("accounts",)],
        )
        self.assertEqual(store.accounts(), {})
        migrated = [e["version"] for e in events if "version" in e]
        self.assertEqual(migrated, list(range(2, SCHEMA_VERSION + 1)))
        # The old history is all there.
        self.assertEqual(
            store.tails(10),
            [
                (T0, "lobby", b"[lobby] <alice> hi\r\n"),
                (T0, "lobby", b"[lobby] * bob waves\r\n"),
                (T0, "lobby", b"[lobby] <alice> 'quoted'\r\n"),
            ],
        )
        self.assertEqual(
            db.execute(
                "SELECT time, room, sender, kind, text FROM messages"
            ).fetchall(),
            [
                (T0, "lobby", "alice", MESSAGE, "hi"),
                (T0, "lobby", "bob", ACTION, "waves"),
                (T0, "lobby", "alice", MESSAGE, "'quoted'"),
            ],
        )
        # And the migrated file works as a new one does.
        store.save_account("alice", "alice", "hash", T0)
        self.assertEqual(store.accounts(), {"alice": Account("alice", "hash")})

    def test_newerVersionRefused(self) -> None:
        path = make_temp_dir(self) / "new.sqlite3"
        db = sqlite3.connect(str(path))
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.close()
        with self.assertRaises(DatabaseError) as caught:
            open_store(str(path))
        reason = str(caught.exception)
        self.assertIn(str(path), reason)
        self.assertIn(f"schema version {SCHEMA_VERSION + 1}", reason)
        self.assertNotIn("\n", reason)
        # Refused, not changed, and not left locked.
        self.assertEqual(
            read_file(path, "PRAGMA user_version"), [(SCHEMA_VERSION + 1,)]
        )
        self.assertEqual(
            read_file(path, "SELECT name FROM sqlite_master WHERE name = 'history'"), []
        )

    def test_notADatabase(self) -> None:
        path = make_temp_dir(self) / "notes.txt"
        junk = (b"These are not the bytes of a SQLite database.\n" * 100)[:4096]
        path.write_bytes(junk)
        with self.assertRaises(DatabaseError) as caught:
            open_store(str(path))
        self.assertIn(str(path), str(caught.exception))
        self.assertEqual(path.read_bytes(), junk)


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
        harness = Harness(Limits(flood_rate=0))
        harness.advance_to(T0)
        self.history = History(keep=keep, clock=harness.clock.seconds, persist=True)
        harness.factory = ChatFactory(
            reactor=harness.clock,
            limits=harness.factory.limits,
            history=self.history if history else None,
            replay=replay,
        )
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
        self.assertNotIn("python", harness.registry.rooms)
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
            [message("lobby", "bot", f"line {i}") for i in range(600)],
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
            message("Python", "guest1", "one")
            + message("Python", "guest1", "two")
            + action("Python", "guest1", "three"),
        )
        self.assertEqual(len(wakes), 1)


# The database service, on the real reactor


@implementer(ILogObserver)
class Observed:
    """
    Every log event while a test runs.
    """

    def __init__(self, testcase: unittest.SynchronousTestCase) -> None:
        self.events: list[LogEvent] = []
        self.waiters: list[tuple[Callable[[LogEvent], bool], Deferred[LogEvent]]] = []
        globalLogPublisher.addObserver(self)
        testcase.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event: LogEvent) -> None:
        self.events.append(event)
        for waiter in list(self.waiters):
            predicate, d = waiter
            if predicate(event):
                self.waiters.remove(waiter)
                d.callback(event)

    def formats(self, text: str) -> list[LogEvent]:
        return [e for e in self.events if text in e.get("log_format", "")]

    def wait(self, text: str) -> Deferred[LogEvent]:
        found = self.formats(text)
        d: Deferred[LogEvent] = Deferred()
        if found:
            d.callback(found[0])
            return d
        self.waiters.append((lambda e: text in e.get("log_format", ""), d))
        return d.addTimeout(TIMEOUT, reactor)


def fire_from_thread(d: Deferred[None]) -> None:
    reactor.callFromThread(d.callback, None)  # type: ignore[attr-defined]


class DatabaseServiceTests(unittest.TestCase):
    def setUp(self) -> None:
        self.path = make_temp_dir(self) / "chat.sqlite3"
        self.clock = Ticker()
        self.history = History(clock=self.clock, persist=True)
        self.accounts: dict[str, Account] = {}
        self.log = Observed(self)

    def database(self, **kwargs: Any) -> Database:
        database = Database(
            str(self.path), self.history, self.accounts, reactor, **kwargs
        )
        database.startService()

        def stop() -> Deferred[None] | None:
            if database.running:
                return database.stopService()
            return None

        self.addCleanup(stop)
        return database

    def say(self, room: str, *texts: str, nick: str = "alice") -> None:
        self.history.record(
            room.lower(), room, [message(room, nick, text) for text in texts]
        )

    def stored(self, room: str) -> list[tuple[str, str]]:
        return [
            (sender, text)
            for sender, text in in_order(
                read_file(
                    self.path,
                    "SELECT chunk, sender, text FROM messages WHERE room = ?",
                    room,
                )
            )
        ]

    @deferred_test
    async def test_stopWritesEverything(self) -> None:
        """
        Stopping writes every line recorded, in order, then closes the file.
        """
        database = self.database(interval=60.0)
        for i in range(100):
            self.say("lobby", f"line {i}")
        self.say("Python", "elsewhere", nick="bob")
        await database.stopService()
        self.assertEqual(self.history.unwritten_lines(), 0)
        self.assertEqual(
            self.stored("lobby"), [("alice", f"line {i}") for i in range(100)]
        )
        self.assertEqual(self.stored("Python"), [("bob", "elsewhere")])
        self.assertEqual(
            read_file(self.path, "SELECT DISTINCT room_key FROM history ORDER BY 1"),
            [("lobby",), ("python",)],
        )
        # Closed: the lock is gone.
        open_store(str(self.path)).close()

    @deferred_test
    async def test_groupCommit(self) -> None:
        """
        Lines recorded together are written together, on the database
        thread, without waiting for a stop.
        """
        database = self.database(interval=0.001)
        real = database.store.insert
        calls: list[tuple[str | None, dict[str, int]]] = []
        written: Deferred[None] = Deferred()

        def insert(taken: dict[str, Unwritten]) -> None:
            calls.append(
                (
                    threading.current_thread().name,
                    {k: u.count for k, u in taken.items()},
                )
            )
            real(taken)
            fire_from_thread(written)

        database.store.insert = insert  # type: ignore[method-assign]
        self.say("lobby", "one", "two")
        self.say("lobby", "three")
        self.say("python", "four")
        await written.addTimeout(TIMEOUT, reactor)
        self.assertEqual(len(calls), 1)
        thread, counts = calls[0]
        self.assertNotEqual(thread, threading.current_thread().name)
        self.assertEqual(counts, {"lobby": 3, "python": 1})
        rows = await database.run(
            lambda: database.store.connection.execute(
                "SELECT chunk, text FROM messages WHERE room = 'lobby'"
            ).fetchall()
        )
        self.assertEqual(in_order(rows), [("one",), ("two",), ("three",)])
        self.assertEqual(self.history.unwritten, {})

    @deferred_test
    async def test_failedWriteLoggedAndRetried(self) -> None:
        """
        A write that fails is logged, and its lines are written again on
        the next try, before any recorded while it was failing.
        """
        self.patch(database_module, "RETRY_INTERVAL", 0.001)
        database = self.database(interval=0.001)
        real = database.store.insert
        calls: list[dict[str, bytes]] = []
        started: Deferred[None] = Deferred()
        retried: Deferred[None] = Deferred()
        release = threading.Event()

        def insert(taken: dict[str, Unwritten]) -> None:
            calls.append({k: bytes(u.data) for k, u in taken.items()})
            if len(calls) == 1:
                fire_from_thread(started)
                release.wait(TIMEOUT)
                raise sqlite3.OperationalError("disk full")
            real(taken)
            if len(calls) == 2:
                fire_from_thread(retried)

        database.store.insert = insert  # type: ignore[method-assign]
        self.say("lobby", "first")
        await started.addTimeout(TIMEOUT, reactor)
        # Said while the failing write is under way.
        self.say("lobby", "second")
        self.say("python", "other room")
        release.set()
        await retried.addTimeout(TIMEOUT, reactor)

        [event] = self.log.formats("history lines failed; they will be tried again")
        self.assertEqual(event["count"], 1)
        self.assertIsInstance(event["log_failure"].value, sqlite3.OperationalError)
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.OperationalError)), 1)
        self.assertEqual(
            calls[1],
            {
                "lobby": message("lobby", "alice", "first")
                + message("lobby", "alice", "second"),
                "python": message("python", "alice", "other room"),
            },
        )
        self.say("lobby", "third")
        await database.stopService()
        self.assertEqual(
            self.stored("lobby"),
            [("alice", "first"), ("alice", "second"), ("alice", "third")],
        )
        self.assertEqual(self.stored("python"), [("alice", "other room")])

    @deferred_test
    async def test_failedWriteThenStop(self) -> None:
        """
        A stop while a write fails waits for it and writes its lines.
        """
        database = self.database(interval=0.001)
        real = database.store.insert
        calls: list[int] = []
        failed: Deferred[None] = Deferred()

        def insert(taken: dict[str, Unwritten]) -> None:
            calls.append(sum(u.count for u in taken.values()))
            if len(calls) == 1:
                fire_from_thread(failed)
                raise sqlite3.OperationalError("disk full")
            real(taken)

        database.store.insert = insert  # type: ignore[method-assign]
        self.say("lobby", "one", "two")
        await failed.addTimeout(TIMEOUT, reactor)
        self.say("lobby", "three")
        await database.stopService()
        self.assertEqual(
            self.flushLoggedErrors(sqlite3.OperationalError)[0].value.args,
            ("disk full",),
        )
        self.assertEqual(
            self.stored("lobby"),
            [("alice", "one"), ("alice", "two"), ("alice", "three")],
        )
        self.assertEqual(self.log.formats("could not be written"), [])

    @deferred_test
    async def test_stopGivesUpOnDeadDisk(self) -> None:
        """
        A disk that refuses every write does not hang the stop: after a few
        tries the loss is logged, with how many lines were lost.
        """
        database = self.database(interval=60.0)

        def insert(taken: dict[str, Unwritten]) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        database.store.insert = insert  # type: ignore[method-assign]
        self.say("lobby", "one", "two", "three")
        await database.stopService()
        self.assertEqual(
            len(self.flushLoggedErrors(sqlite3.OperationalError)),
            database_module.STOP_TRIES,
        )
        [lost] = self.log.formats("could not be written and are lost")
        self.assertEqual(lost["count"], 3)
        self.assertEqual(self.history.unwritten_lines(), 0)

    @deferred_test
    async def test_realWriteErrorThenMoreLines(self) -> None:
        """
        When SQLite itself fails a write (disk full), Store.insert's
        memoryviews of the room's buffer live on in the logged failure's
        traceback. The next line said in the room must still be recorded
        and delivered, and everything written in the end. Here a log
        observer keeps the failure, as trial's does.
        """
        self.addCleanup(self.flushLoggedErrors, sqlite3.OperationalError)
        database = self.database(interval=0.001)
        connection = database.store.connection

        class FullDisk:
            """
            The connection, whose first executemany fails like a full disk.
            """

            failed = False

            def executemany(self, *args: Any) -> Any:
                if not FullDisk.failed:
                    FullDisk.failed = True
                    raise sqlite3.OperationalError("database or disk is full")
                return connection.executemany(*args)

            def __getattr__(self, name: str) -> Any:
                return getattr(connection, name)

        database.store.connection = FullDisk()  # type: ignore[assignment]
        self.say("lobby", "one")
        await self.log.wait("history lines failed; they will be tried again")
        # The failed lines have been given back by now.
        await deferLater(reactor, 0, lambda: None)
        self.say("lobby", "two")
        await database.stopService()
        self.assertEqual(self.stored("lobby"), [("alice", "one"), ("alice", "two")])

    @deferred_test
    async def test_startLoadsFile(self) -> None:
        """
        Starting reads back each room's tail and the accounts.
        """
        store = open_store(str(self.path))
        store.insert(
            {
                "lobby": batch(
                    T0, "lobby", [message("lobby", "a", f"{i}") for i in range(5)]
                )
            }
        )
        store.insert(
            {"python": batch(T0 + 1, "Python", [action("Python", "b", "waves")])}
        )
        store.save_account("alice", "Alice", "hash'", T0)
        store.close()
        self.history = History(keep=3, clock=self.clock, persist=True)
        database = self.database()
        self.assertEqual(
            [e.text for e in self.history.recent("lobby", 10)], ["2", "3", "4"]
        )
        self.assertEqual(
            self.history.recent("python", 10), [Entry(T0 + 1, "b", ACTION, "waves")]
        )
        self.assertEqual(self.accounts, {"alice": Account("Alice", "hash'")})
        self.assertEqual(self.history.unwritten, {})
        self.say("lobby", "5")
        await database.stopService()
        self.assertEqual(
            [t for _, t in self.stored("lobby")], [str(i) for i in range(6)]
        )

    @deferred_test
    async def test_startMigratesOldFile(self) -> None:
        version_1_file(self.path)
        database = self.database()
        self.assertEqual(self.history.recent("lobby", 10), VERSION_1_ENTRIES)
        self.say("lobby", "new")
        await database.stopService()
        self.assertEqual(
            read_file(self.path, "PRAGMA user_version"), [(SCHEMA_VERSION,)]
        )
        self.assertEqual(
            self.stored("lobby"),
            [
                ("alice", "hi"),
                ("bob", "waves"),
                ("alice", "'quoted'"),
                ("alice", "new"),
            ],
        )

    @deferred_test
    async def test_pruneAtStart(self) -> None:
        """
        Retention runs at start (and then every PRUNE_INTERVAL): by lines
        per room and by age, and says how much went.
        """
        now = time.time()
        store = open_store(str(self.path))
        store.insert(
            {"old": batch(now - 10 * 86400, "old", [message("old", "a", "x")])}
        )
        for i in range(10):
            store.insert(
                {"lobby": batch(now, "lobby", [message("lobby", "a", f"{i}")])}
            )
        store.close()
        database = self.database(max_per_room=3, days=1)
        await database.stopService()
        self.assertEqual([t for _, t in self.stored("lobby")], ["7", "8", "9"])
        self.assertEqual(self.stored("old"), [])
        [pruned] = self.log.formats("Pruned {count} history lines")
        self.assertEqual(pruned["count"], 8)

    @deferred_test
    async def test_noPruneByDefault(self) -> None:
        store = open_store(str(self.path))
        store.insert({"old": batch(1.0, "old", [message("old", "a", "x")])})
        store.close()
        database = self.database()
        await database.stopService()
        self.assertEqual(self.stored("old"), [("a", "x")])
        self.assertEqual(self.log.formats("Pruned"), [])

    @deferred_test
    async def test_withoutPersistence(self) -> None:
        """
        With a History that does not persist (--no-history), nothing is
        written.
        """
        self.history = History(clock=self.clock)
        database = self.database(interval=0.001)
        self.say("lobby", "not kept")
        await database.stopService()
        self.assertEqual(read_file(self.path, "SELECT count(*) FROM history"), [(0,)])


# The installed server


def refused(testcase: unittest.SynchronousTestCase, database: str) -> str:
    """
    Start C{twistd -n chat --database DATABASE}, which must fail at once
    with one line saying why, naming the file, and no traceback; return
    that line.
    """
    cwd = make_temp_dir(testcase)
    started = time.monotonic()
    result = subprocess.run(
        [
            str(TWISTD),
            "-n",
            "chat",
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--database",
            database,
        ],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )
    elapsed = time.monotonic() - started
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    testcase.assertNotEqual(result.returncode, 0, output)
    testcase.assertLess(elapsed, 15, output)
    testcase.assertNotIn("Traceback", output)
    testcase.assertNotIn("listening on", output)
    lines = output.strip().splitlines()
    testcase.assertEqual(len(lines), 1, output)
    testcase.assertIn(database, lines[0])
    return lines[0]


def stop_cleanly(testcase: unittest.SynchronousTestCase, server: ServerProcess) -> None:
    """
    SIGTERM C{server}, which must shut down in order and without a
    traceback. twistd ends by re-raising the signal that stopped it, so a
    clean stop exits by SIGTERM (or 0), after "Server Shut Down.".
    """
    output = server.output + server.stop()
    testcase.assertIn(server.process.returncode, (0, -signal.SIGTERM), output)
    testcase.assertIn(b"Server Shut Down.", output)
    testcase.assertNotIn(b"Traceback", output)


class StartupFailureTests(unittest.SynchronousTestCase):
    def test_missingDirectory(self) -> None:
        path = make_temp_dir(self) / "no-such-directory" / "chat.sqlite3"
        line = refused(self, str(path))
        self.assertIn("cannot open", line)
        self.assertFalse(path.parent.exists())

    def test_noPermission(self) -> None:
        """
        A place where even root may not create a file.
        """
        path = "/proc/chat-test.sqlite3"
        line = refused(self, path)
        self.assertIn("cannot open", line)
        self.assertFalse(os.path.exists(path))

    def test_notSQLite(self) -> None:
        path = make_temp_dir(self) / "notes.sqlite3"
        junk = (b"These are not the bytes of a SQLite database.\n" * 100)[:4096]
        path.write_bytes(junk)
        line = refused(self, str(path))
        self.assertIn("not a database", line)
        self.assertEqual(path.read_bytes(), junk)

    def test_newerSchema(self) -> None:
        path = make_temp_dir(self) / "future.sqlite3"
        db = sqlite3.connect(str(path))
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.close()
        line = refused(self, str(path))
        self.assertIn(f"schema version {SCHEMA_VERSION + 1}", line)
        self.assertEqual(
            read_file(path, "PRAGMA user_version"), [(SCHEMA_VERSION + 1,)]
        )

    def test_lockedByAnotherServer(self) -> None:
        path = make_temp_dir(self) / "chat.sqlite3"
        first = ServerProcess(self, options=["--database", str(path)])
        # The listener is logged before the database is opened for good.
        if b"Using database" not in first.output:
            assert first.process.stdout is not None
            read_until(first.process.stdout, re.compile(rb"Using database"))
        line = refused(self, str(path))
        self.assertIn("locked", line)
        self.assertIn("another chat server", line)
        # The first server is unharmed.
        assert first.tcp_port is not None
        client = SocketClient(self, first.tcp_port)
        client.welcome()
        client.send(b"/rooms\n")
        self.assertEqual(client.read_line(), b"*** 1 room(s):\r\n")
        stop_cleanly(self, first)


def read_replay(
    client: SocketClient, room: str, since: float
) -> list[tuple[str, str, str]]:
    """
    Read a replay block of C{room} from C{client}: (sender, kind, text) of
    each line, checking the framing and that each time is between C{since}
    and now.
    """
    header = client.read_line()
    match = re.fullmatch(rb"\*\*\* Last (\d+) line\(s\) of (.+):\r\n", header)
    assert match is not None, header
    assert match.group(2).decode() == room, header
    lines = []
    for _ in range(int(match.group(1))):
        line = client.read_line()
        stamped = STAMPED.match(line)
        assert stamped is not None, line
        assert stamped.group("room").decode() == room, line
        when = calendar.timegm(
            time.strptime(stamped.group("when").decode(), "%Y-%m-%d %H:%M:%S")
        )
        assert int(since) <= when <= time.time(), (line, since)
        if stamped.group("nick") is not None:
            lines.append((stamped.group("nick").decode(), MESSAGE, ""))
        else:
            lines.append((stamped.group("actor").decode(), ACTION, ""))
        lines[-1] = (*lines[-1][:2], stamped.group("text").decode())
    end = client.read_line()
    assert end == f"*** End of history of {room}.\r\n".encode(), end
    return lines


def expect(client: SocketClient, line: str) -> None:
    """
    Skip to C{line}, which must come.
    """
    client.read_until(lambda got: got == line.encode() + b"\r\n")


class RestartTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.path = make_temp_dir(self) / "chat.sqlite3"

    def server(self, *options: str) -> ServerProcess:
        return ServerProcess(self, options=["--database", str(self.path), *options])

    def stop(self, server: ServerProcess) -> None:
        stop_cleanly(self, server)

    def test_historySurvivesRestart(self) -> None:
        since = time.time()
        server = self.server()
        assert server.tcp_port is not None
        alice = SocketClient(self, server.tcp_port)
        alice.welcome()
        bob = SocketClient(self, server.tcp_port)
        bob.welcome()
        alice.send(b"/nick alice\n")
        expect(alice, "*** You are now known as alice.")
        bob.send(b"/nick bob\n")
        expect(bob, "*** You are now known as bob.")
        alice.send(b"good morning\n")
        expect(bob, "[lobby] <alice> good morning")
        bob.send(b"/me waves\n")
        expect(alice, "[lobby] * bob waves")
        bob.send(b"/msg alice a secret\n")
        expect(alice, "*bob* a secret")
        alice.send(b"/join python\n")
        expect(alice, "*** Now talking in python (1 member).")
        bob.send(b"/join python\n")
        expect(alice, "[python] --> bob joined")
        alice.send(b"anyone seen carol?\n")
        expect(bob, "[python] <alice> anyone seen carol?")
        bob.send("日本語 😀 'quotes' > ]\n".encode())
        expect(alice, "[python] <bob> 日本語 😀 'quotes' > ]")
        alice.send(b"/part lobby\n")
        expect(alice, "*** You left lobby; now talking in python.")
        self.stop(server)

        again = self.server()
        assert again.tcp_port is not None
        carol = SocketClient(self, again.tcp_port)
        carol.welcome()
        self.assertEqual(
            read_replay(carol, "lobby", since),
            [("alice", MESSAGE, "good morning"), ("bob", ACTION, "waves")],
        )
        carol.send(b"/join python\n")
        expect(carol, "*** Now talking in python (1 member).")
        self.assertEqual(
            read_replay(carol, "python", since),
            [
                ("alice", MESSAGE, "anyone seen carol?"),
                ("bob", MESSAGE, "日本語 😀 'quotes' > ]"),
            ],
        )
        carol.send(b"/history 1\n")
        self.assertEqual(
            read_replay(carol, "python", since),
            [("bob", MESSAGE, "日本語 😀 'quotes' > ]")],
        )
        self.stop(again)

    def test_burstAllWritten(self) -> None:
        """
        10,000 lines relayed just before a SIGTERM are all in the file, in
        order.
        """
        count = 10_000
        server = self.server("--flood-rate", "0")
        assert server.tcp_port is not None
        reader = SocketClient(self, server.tcp_port)
        reader.welcome()
        sender = SocketClient(self, server.tcp_port)
        nick = sender.welcome()
        expect(reader, f"[lobby] --> {nick} joined")
        texts = [f"burst {i:05d} 'q' 😀" for i in range(count)]
        step = 500
        for start in range(0, count, step):
            sender.send(
                b"".join(t.encode() + b"\n" for t in texts[start : start + step])
            )
            for text in texts[start : start + step]:
                self.assertEqual(
                    reader.read_line(), f"[lobby] <{nick}> {text}\r\n".encode()
                )
        self.stop(server)
        self.assertEqual(
            read_file(self.path, "SELECT sum(count) FROM history"), [(count,)]
        )
        self.assertEqual(
            in_order(
                read_file(
                    self.path,
                    "SELECT chunk, sender, kind, text FROM messages"
                    " WHERE room = 'lobby'",
                )
            ),
            [(nick, MESSAGE, text) for text in texts],
        )

    def test_noHistory(self) -> None:
        """
        --no-history: nothing replayed, nothing shown, nothing written; the
        database is still made, for accounts.
        """
        server = self.server("--no-history")
        assert server.tcp_port is not None
        a = SocketClient(self, server.tcp_port)
        a.welcome()
        b = SocketClient(self, server.tcp_port)
        b.welcome()
        a.send(b"not kept\n/me neither\n")
        expect(b, "[lobby] * guest1 neither")
        c = SocketClient(self, server.tcp_port)
        c.welcome()
        c.send(b"/history\n")
        self.assertEqual(c.read_line(), b"!!! This server keeps no history.\r\n")
        self.stop(server)
        self.assertEqual(read_file(self.path, "SELECT count(*) FROM history"), [(0,)])
        self.assertEqual(
            read_file(self.path, "PRAGMA user_version"), [(SCHEMA_VERSION,)]
        )

    def test_memoryLeavesNoFile(self) -> None:
        server = ServerProcess(self, options=["--database", ":memory:"])
        assert server.tcp_port is not None
        a = SocketClient(self, server.tcp_port)
        a.welcome()
        a.send(b"kept in memory\n/rooms\n")
        expect(a, "*** 1 room(s):")
        b = SocketClient(self, server.tcp_port)
        b.welcome()
        # History works while the server runs.
        self.assertEqual(
            read_replay(b, "lobby", time.time() - 60),
            [("guest1", MESSAGE, "kept in memory")],
        )
        self.stop(server)
        self.assertEqual(sorted(os.listdir(server.directory)), [])
