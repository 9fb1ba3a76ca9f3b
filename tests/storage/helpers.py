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

from chatservice.core.history import (
    ACTION,
    MESSAGE,
    Entry,
    Kind,
    Unwritten,
    encode_record,
)
from chatservice.core.names import fold
from chatservice.storage.schema import MIGRATIONS
from chatservice.storage.store import Store, open_store
from tests.support.helpers import make_temp_dir

# The example in docs/protocol.md: 2026-11-24 09:15:02 UTC.
T0 = float(calendar.timegm((2026, 11, 24, 9, 15, 2, 0, 0, 0)))

STAMPED = re.compile(
    rb"^\[(?P<room>[^\]]+)\] \((?P<when>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\) "
    rb"(?:<(?P<nick>[^>]+)> |\* (?P<actor>\S+) )(?P<text>.*)\r\n$"
)


def said(nick: str, text: str) -> bytes:
    """
    The history record of a message.
    """
    return encode_record(MESSAGE, nick, text)


def acted(nick: str, text: str) -> bytes:
    """
    The history record of an action.
    """
    return encode_record(ACTION, nick, text)


def record(nick: str, kind: Kind, text: str) -> bytes:
    return encode_record(kind, nick, text)


def v2_line(room: str, nick: str, kind: Kind, text: str) -> bytes:
    """
    A line as schema versions 1 and 2 stored it: the wire line that was
    broadcast, CRLF and all. Written out here rather than taken from the
    line front end, so that it stays what those servers wrote.
    """
    if kind == MESSAGE:
        return f"[{room}] <{nick}> {text}\r\n".encode()
    return f"[{room}] * {nick} {text}\r\n".encode()


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


# Texts holding what ended names in a wire line, and more.
AWKWARD_TEXTS = [
    "a > b",
    "> quoted reply",
    "[lobby] <mallory> fake",
    "] closing",
    "it's \"quoted\" and 'single'",
    "emoji 😀🎉 and 日本語",
    "'); DROP TABLE history; --",
    "  leading spaces",
]

ODD_LINES: list[tuple[str, Kind, str]] = [
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


def old_file(
    path: Path, version: int, chunks: list[tuple[float, str, str, bytes]]
) -> Path:
    """
    A file as the server of schema C{version} (1 or 2) left it, holding
    C{chunks} of history: (time, room key, room, wire lines).
    """
    db = sqlite3.connect(str(path), isolation_level=None)
    try:
        for shipped in range(version):
            for statement in MIGRATIONS[shipped]:
                assert isinstance(statement, str)
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {version}")
        db.executemany(
            "INSERT INTO history (time, room_key, room, count, lines)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (when, key, room, lines.count(b"\r\n"), lines)
                for when, key, room, lines in chunks
            ],
        )
    finally:
        db.close()
    return path


def version_1_file(path: Path) -> Path:
    """
    A file as the first release of history left it: schema version 1, no
    accounts table, one chunk of lobby history.
    """
    return old_file(path, 1, [(T0, "lobby", "lobby", VERSION_1_CHUNK)])


# What today's main (schema version 2) said and stored, chunk by chunk:
# (time, room, (sender, kind, text) of each line). Actions, Unicode, an
# empty action, and texts that hold what ended names in a wire line.
VERSION_2_SAID: list[tuple[float, str, list[tuple[str, Kind, str]]]] = [
    (
        T0,
        "lobby",
        [
            ("alice", MESSAGE, "good morning"),
            ("bob", ACTION, "waves"),
            ("alice", MESSAGE, "anyone seen carol?"),
        ],
    ),
    (
        T0 + 65,
        "Café",
        [
            ("名前", MESSAGE, "日本語 😀 'quotes'"),
            ("erin", MESSAGE, "[lobby] <mallory> fake ] and > too"),
            ("frank", ACTION, "waves > everyone ] loudly"),
            ("dave", ACTION, ""),
        ],
    ),
    (
        T0 + 3600,
        "lobby",
        [
            ("carol", MESSAGE, "> quoted reply"),
            ("carol", MESSAGE, "  leading spaces"),
        ],
    ),
]

# The rows of the messages view for VERSION_2_SAID, as both versions give
# them: (chunk, line, time, room, sender, kind, text).
VERSION_2_ROWS = [
    (chunk, line, when, room, sender, kind, text)
    for chunk, (when, room, lines) in enumerate(VERSION_2_SAID, 1)
    for line, (sender, kind, text) in enumerate(lines, 1)
]


def version_2_file(path: Path) -> Path:
    """
    A file as today's main leaves it: schema version 2, with
    L{VERSION_2_SAID} stored as that server stored it.
    """
    return old_file(
        path,
        2,
        [
            (
                when,
                fold(room),
                room,
                b"".join(v2_line(room, *said) for said in lines),
            )
            for when, room, lines in VERSION_2_SAID
        ],
    )
