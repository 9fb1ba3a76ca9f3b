"""
Tests for L{chatservice.storage.schema}: versions and migrations.
"""

from __future__ import annotations

import sqlite3

from twisted.logger import capturedLogs
from twisted.trial import unittest

from chatservice.core.accounts import Account
from chatservice.core.history import ACTION, MESSAGE
from chatservice.storage.schema import SCHEMA_VERSION, DatabaseError
from chatservice.storage.store import open_store
from tests.storage.helpers import T0, read_file, version_1_file
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
