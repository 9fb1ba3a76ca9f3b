"""
Server bans and the audit log in the SQLite file (schema version 5).
"""

from __future__ import annotations

from twisted.trial import unittest

from chatservice.core.audit import AuditEntry
from chatservice.core.server_bans import ServerBan
from chatservice.storage.store import open_store
from tests.storage.helpers import T0, new_store


class ServerBanStoreTests(unittest.SynchronousTestCase):
    def test_roundTrip(self) -> None:
        """
        Bans are stored with parameters, survive reopening oldest first, a
        ban on the same mask replaces the old, and a deleted one is gone.
        """
        store, path = new_store(self)
        odd = ServerBan("$a:o'brien", "boss (Chief)", T0 + 1, None, "'; DROP TABLE x")
        store.save_server_ban(ServerBan("*!*@10.0.0.0/8", "boss", T0, T0 + 60, "spam"))
        store.save_server_ban(odd)
        store.save_server_ban(ServerBan("*!*@1.2.3.4", "boss", T0 + 2, None, ""))
        store.save_server_ban(ServerBan("*!*@10.0.0.0/8", "boss", T0, T0 + 99, "again"))
        store.delete_server_ban("*!*@1.2.3.4")
        store.delete_server_ban("*!*@9.9.9.9")
        store.close()
        again = open_store(str(path))
        self.addCleanup(again.close)
        self.assertEqual(
            again.server_bans(),
            [ServerBan("*!*@10.0.0.0/8", "boss", T0, T0 + 99, "again"), odd],
        )


class AuditStoreTests(unittest.SynchronousTestCase):
    def test_roundTrip(self) -> None:
        """Entries are kept in order; reading takes the newest, oldest first."""
        store, path = new_store(self)
        entries = [
            AuditEntry(T0 + n, "boss", "kill", f"bob{n}", "", "why?'\"")
            for n in range(5)
        ]
        entries.append(AuditEntry(T0 + 9, "alice", "ban", "*!*@1.2.3.4", "lobby"))
        for entry in entries:
            store.save_audit(entry)
        store.close()
        again = open_store(str(path))
        self.addCleanup(again.close)
        self.assertEqual(again.audit(3), entries[-3:])
        self.assertEqual(again.audit(100), entries)
