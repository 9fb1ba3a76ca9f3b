"""
What the storage tests share: a fixed time, lines and batches as the
server records them, and files to read and write.
"""

from __future__ import annotations

import calendar
import re
import sqlite3
from pathlib import Path
from typing import Any

from twisted.trial import unittest

from chatservice.core.history import ACTION, MESSAGE, Entry, Unwritten
from chatservice.frontends.line import wire
from chatservice.storage.schema import MIGRATIONS
from chatservice.storage.store import Store, open_store
from tests.support.helpers import make_temp_dir

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


class Ticker:
    """
    A clock for L{History} that the test moves.
    """

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


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
