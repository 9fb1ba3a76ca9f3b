"""
Tests for L{chatservice.storage.store}: what only the SQLite file does
(opening, locking, reading it back as a file). The queries both engines
share are tested on both, in L{tests.storage.test_postgres_store}.
"""

from __future__ import annotations

from twisted.logger import capturedLogs
from twisted.trial import unittest

from chatservice.core import sanitize
from chatservice.core.accounts import Account
from chatservice.core.history import (
    ACTION,
    MESSAGE,
    Entry,
    History,
    decode_record,
)
from chatservice.frontends.limits import Limits
from chatservice.storage.schema import SCHEMA_VERSION, DatabaseError
from chatservice.storage.store import Store, open_store
from tests.storage.helpers import (
    ODD_LINES,
    T0,
    batch,
    in_order,
    new_store,
    read_file,
    record,
    said,
)
from tests.support.memory import Harness


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
        store.insert({"lobby": batch(T0, "lobby", [said("a", "kept")])})
        store.close()
        with capturedLogs() as events:
            again = open_store(str(path))
        self.addCleanup(again.close)
        self.assertEqual(
            [e for e in events if "Migrated" in e.get("log_format", "")], []
        )
        self.assertEqual(again.tails(5), [(T0, "lobby", said("a", "kept"))])

    def test_memory(self) -> None:
        store = open_store(":memory:")
        self.addCleanup(store.close)
        self.assertEqual(
            store.connection.execute("PRAGMA user_version").fetchone(),
            (SCHEMA_VERSION,),
        )
        store.insert({"lobby": batch(T0, "lobby", [said("a", "hi")])})
        self.assertEqual(store.tails(1), [(T0, "lobby", said("a", "hi"))])

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
                    [record(nick, kind, text) for nick, kind, text in ODD_LINES],
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
        What is written is read back byte for byte, and decodes to what was
        said.
        """
        store, _ = new_store(self)
        room = "café-日本"
        lines = [record(nick, kind, text) for nick, kind, text in ODD_LINES]
        store.insert({"café-日本": batch(T0, room, lines)})
        tails = store.tails(len(lines))
        self.assertEqual(tails, [(T0, "café-日本", line) for line in lines])
        self.assertEqual(
            [decode_record(when, line) for when, _, line in tails],
            [Entry(T0, nick, kind, text) for nick, kind, text in ODD_LINES],
        )

    def test_messagesViewKeepsOrderAcrossChunks(self) -> None:
        """
        The recursive split walks every chunk breadth first; a plain
        C{SELECT ... FROM messages} (the query docs/protocol.md shows) must
        still give the lines in the order they were said.
        """
        store, path = new_store(self)
        texts = []
        for chunk in range(3):
            lines = [f"chunk {chunk} line {i}" for i in range(3)]
            texts += lines
            store.insert(
                {"lobby": batch(T0 + chunk, "lobby", [said("a", t) for t in lines])}
            )
        store.close()
        self.assertEqual(
            [
                text
                for (text,) in read_file(
                    path, "SELECT text FROM messages WHERE room = 'lobby'"
                )
            ],
            texts,
        )

    def test_bigBatchIsChunked(self) -> None:
        """
        A room's batch bigger than CHUNK_BYTES is stored as several chunks,
        cut at line ends, with the right counts, and read back in order.
        """
        store, path = new_store(self)
        lines = [said("a", f"{i:04d} " + "y" * 3000) for i in range(20)]
        store.insert({"lobby": batch(T0, "lobby", lines)})
        rows = store.connection.execute(
            "SELECT count, lines FROM history ORDER BY id"
        ).fetchall()
        self.assertGreater(len(rows), 1)
        for count, blob in rows:
            self.assertTrue(blob.endswith(b"\n"))
            self.assertEqual(count, blob.count(b"\n"))
        self.assertEqual(b"".join(blob for _, blob in rows), b"".join(lines))
        self.assertEqual([line for _, _, line in store.tails(20)], lines)
        store.close()
        self.assertEqual(
            in_order(read_file(path, "SELECT chunk, text FROM messages")),
            [(f"{i:04d} " + "y" * 3000,) for i in range(20)],
        )

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
                        [said("a", f"{i}.{j}") for j in range(2)],
                    )
                }
            )
            if i == 0:
                store.insert({"python": batch(T0 + 50, "python", [said("b", "p")])})

    def texts(self, store: Store, room: str) -> list[str]:
        return [
            decode_record(when, line).text
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
        harness = Harness(
            Limits(flood_rate=0),
            history=lambda clock: History(clock=clock.seconds, persist=True),
        )
        history = harness.chat.history
        assert history is not None
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
