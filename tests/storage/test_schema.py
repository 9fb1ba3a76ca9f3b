"""
Tests for L{chatservice.storage.schema}: versions and migrations.
"""

from __future__ import annotations

import hashlib
import sqlite3

from twisted.logger import LogEvent, capturedLogs
from twisted.trial import unittest

from chatservice.core.accounts import Account
from chatservice.core.audit import AuditEntry
from chatservice.core.history import ACTION, HISTORY_MAX, MESSAGE, Entry, History
from chatservice.core.moderation import RoomRecord
from chatservice.core.server_bans import ServerBan
from chatservice.storage.schema import MIGRATIONS, SCHEMA_VERSION, DatabaseError
from chatservice.storage.store import Store, open_store
from tests.storage.helpers import (
    AWKWARD_TEXTS,
    ODD_LINES,
    T0,
    VERSION_2_ROWS,
    VERSION_2_SAID,
    acted,
    old_file,
    read_file,
    record,
    said,
    v2_line,
    version_1_file,
    version_2_file,
)
from tests.support.helpers import make_temp_dir


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
                (T0, "lobby", said("alice", "hi")),
                (T0, "lobby", acted("bob", "waves")),
                (T0, "lobby", said("alice", "'quoted'")),
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

    def test_shippedMigrationsUnchanged(self) -> None:
        """
        A migration that has shipped is never edited (files out there are
        at its version already): each one's statements, and the names of
        its Python steps, are pinned here. A new version adds a line.
        """
        shipped = {
            0: "30ba32ad4062807b",
            1: "0bdbea6d211f6576",
            2: "73a44a94cdc68a69",
            3: "a2a8b1f14f8d347e",
            4: "90ef7d1b50206940",
        }
        found = {}
        for version in shipped:
            digest = hashlib.sha256()
            for step in MIGRATIONS[version]:
                text = step if isinstance(step, str) else step.__name__
                digest.update(text.encode() + b"\0")
            found[version] = digest.hexdigest()[:16]
        self.assertEqual(found, shipped)
        self.assertEqual(sorted(MIGRATIONS), list(range(SCHEMA_VERSION)))

    def test_fromVersion5(self) -> None:
        """
        A file as main left it at version 5 (registered rooms, no server
        bans or audit log) gains the server bans and the audit log at 6,
        and keeps its rooms.
        """
        path = str(make_temp_dir(self) / "v5.sqlite3")
        room = RoomRecord("lobby", "Lobby", "alice", op_accounts=frozenset({"bob"}))
        store = open_store(path)
        store.save_room(room, T0)
        store.close()
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("DROP TABLE server_bans")
        db.execute("DROP TABLE audit")
        db.execute("PRAGMA user_version = 5")
        db.close()
        with capturedLogs() as events:
            store = open_store(path)
        self.addCleanup(store.close)
        self.assertEqual([e["version"] for e in events if "version" in e], [6])
        self.assertEqual(store.rooms(), [room])
        self.assertEqual(store.server_bans(), [])
        self.assertEqual(store.audit(10), [])
        ban = ServerBan("*!*@10.0.0.0/8", "boss", T0, None, "spam")
        store.save_server_ban(ban)
        store.save_audit(AuditEntry(T0, "boss", "server-ban", ban.mask, "", "spam"))
        self.assertEqual(store.server_bans(), [ban])
        self.assertEqual(len(store.audit(10)), 1)

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


# Everything about the history table but the bytes of each chunk.
CHUNKS = "SELECT id, time, room_key, room, count FROM history ORDER BY id"
HISTORY = "SELECT * FROM history ORDER BY id"
MESSAGES = "SELECT * FROM messages"


class VersionTwoTests(unittest.SynchronousTestCase):
    """
    A file written by the server of schema version 2, whose history is the
    line protocol's wire lines, moves to version 3's records.
    """

    def setUp(self) -> None:
        self.path = version_2_file(make_temp_dir(self) / "chat.sqlite3")

    def open(self) -> tuple[Store, list[LogEvent]]:
        with capturedLogs() as events:
            store = open_store(str(self.path))
        self.addCleanup(store.close)
        return store, events

    def test_reencoded(self) -> None:
        """
        Each chunk keeps its row, time, room and count; its lines become
        records, in the order they were said.
        """
        chunks = read_file(self.path, CHUNKS)
        store, events = self.open()
        self.assertEqual(
            [e["version"] for e in events if "version" in e],
            list(range(3, SCHEMA_VERSION + 1)),
        )
        self.assertEqual(
            store.connection.execute("PRAGMA user_version").fetchone(),
            (SCHEMA_VERSION,),
        )
        self.assertEqual(store.connection.execute(CHUNKS).fetchall(), chunks)
        self.assertEqual(
            [
                bytes(blob)
                for (blob,) in store.connection.execute(
                    "SELECT lines FROM history ORDER BY id"
                )
            ],
            [
                b"".join(record(*said) for said in lines)
                for _, _, lines in VERSION_2_SAID
            ],
        )

    def test_messagesViewUnchanged(self) -> None:
        """
        The messages view gives the same rows before and after.
        """
        self.assertEqual(read_file(self.path, MESSAGES), VERSION_2_ROWS)
        store, _ = self.open()
        self.assertEqual(store.connection.execute(MESSAGES).fetchall(), VERSION_2_ROWS)
        store.close()
        self.assertEqual(read_file(self.path, MESSAGES), VERSION_2_ROWS)

    def test_replaysTheSameEntries(self) -> None:
        """
        What the server loads from the migrated file replays as the lines
        that were said.
        """
        store, _ = self.open()
        history = History()
        history.load(store.tails(HISTORY_MAX))
        for key, room in (("lobby", "lobby"), ("café", "Café")):
            self.assertEqual(
                history.recent(key, HISTORY_MAX),
                [
                    Entry(when, *said)
                    for when, name, lines in VERSION_2_SAID
                    if name == room
                    for said in lines
                ],
            )

    def test_awkwardLines(self) -> None:
        """
        Whatever a version 2 line's text holds, its record is exactly what
        the server records today for the same line, and it replays as what
        was said.
        """
        lines = ODD_LINES + [
            ("名前_1", kind, text)
            for text in AWKWARD_TEXTS
            for kind in (MESSAGE, ACTION)
        ]
        self.path.unlink()
        old_file(
            self.path,
            2,
            [
                (
                    T0,
                    "py-room",
                    "py-room",
                    b"".join(v2_line("py-room", *line) for line in lines),
                )
            ],
        )
        store, _ = self.open()
        tails = store.tails(len(lines))
        self.assertEqual(tails, [(T0, "py-room", record(*line)) for line in lines])
        history = History()
        history.load(tails)
        self.assertEqual(
            history.recent("py-room", len(lines)),
            [Entry(T0, *line) for line in lines],
        )

    def test_manyChunks(self) -> None:
        """
        The chunks are re-encoded a batch at a time; every one of them is.
        """
        self.path.unlink()
        count = 600
        old_file(
            self.path,
            2,
            [
                (T0 + i, "lobby", "lobby", v2_line("lobby", "a", MESSAGE, f"{i}"))
                for i in range(count)
            ],
        )
        store, _ = self.open()
        self.assertEqual(
            store.tails(count),
            [(T0 + i, "lobby", said("a", f"{i}")) for i in range(count)],
        )

    def test_secondOpenChangesNothing(self) -> None:
        """
        Opening the migrated file again migrates nothing and leaves every
        byte of history as it was.
        """
        store, _ = self.open()
        store.close()
        migrated = read_file(self.path, HISTORY)
        store, events = self.open()
        self.assertEqual([e for e in events if "version" in e], [])
        self.assertEqual(store.connection.execute(HISTORY).fetchall(), migrated)
        self.assertEqual(store.connection.execute(MESSAGES).fetchall(), VERSION_2_ROWS)

    def test_strangeLineRefused(self) -> None:
        """
        A line that no version 2 server stored stops the migration with one
        line naming the file and the chunk, and leaves the file as it was.
        """
        db = sqlite3.connect(str(self.path))
        db.execute(
            "INSERT INTO history (time, room_key, room, count, lines)"
            " VALUES (?, 'lobby', 'lobby', 1, ?)",
            (T0, b"[lobby] --> bob joined\r\n"),
        )
        db.commit()
        db.close()
        before = read_file(self.path, HISTORY)
        with self.assertRaises(DatabaseError) as caught:
            open_store(str(self.path))
        reason = str(caught.exception)
        self.assertIn(str(self.path), reason)
        self.assertIn("schema version 3", reason)
        self.assertIn("chunk 4", reason)
        self.assertNotIn("\n", reason)
        self.assertEqual(read_file(self.path, "PRAGMA user_version"), [(2,)])
        self.assertEqual(read_file(self.path, HISTORY), before)
        self.assertEqual(read_file(self.path, MESSAGES)[:-1], VERSION_2_ROWS)
