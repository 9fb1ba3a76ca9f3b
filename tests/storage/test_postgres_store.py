"""
The store's queries on both engines: L{StoreBehaviour} is one set of test
bodies, run by L{SQLiteStoreTests} on a SQLite file and by
L{PostgresStoreTests} on a PostgreSQL schema of the test's own
(L{tests.support.postgres}). The SQL is written once, so what it does must
be the same on both; what only one engine has (SQLite's lock and WAL,
PostgreSQL's version table and concurrent start-ups) is tested below them.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from typing import Any, get_args

from twisted.logger import capturedLogs
from twisted.trial import unittest

from chatservice.core.accounts import Account
from chatservice.core.audit import AuditEntry
from chatservice.core.events import Topic
from chatservice.core.history import Entry, Kind, decode_record
from chatservice.core.server_bans import ServerBan
from chatservice.storage import store as store_module
from chatservice.storage.dialect import POSTGRESQL, SQLITE
from chatservice.storage.postgres import open_postgres
from chatservice.storage.schema import (
    CURRENT_INDEXES,
    CURRENT_TABLES,
    SCHEMA_VERSION,
    DatabaseError,
    current_schema,
)
from chatservice.storage.store import Store, open_store
from tests.storage.helpers import (
    ODD_LINES,
    T0,
    acted,
    batch,
    new_store,
    record,
    said,
)
from tests.storage.test_rooms import CAFE, PLAIN
from tests.support.postgres import admin, dead_url, fresh_url


class StoreBehaviour:
    """
    What the store does, whatever the engine. A test case mixes this in
    with L{open_new} (an empty database's store, closed in cleanup) and
    L{reopen} (the same database again, as a restarted server opens it).
    """

    assertEqual: Any
    assertTrue: Any
    assertFalse: Any
    assertIsNone: Any
    assertIn: Any
    assertGreater: Any
    addCleanup: Any

    def open_new(self) -> Store:
        raise NotImplementedError()

    def reopen(self, store: Store) -> Store:
        raise NotImplementedError()

    def rows(self, store: Store, query: str, *args: object) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in store.connection.execute(query, args)]

    def test_version(self) -> None:
        """
        A new database is made at the current version, and opened as it
        is the next time.
        """
        store = self.open_new()
        with capturedLogs() as events:
            again = self.reopen(store)
        self.assertEqual(again.migrate(), SCHEMA_VERSION)
        self.assertEqual(
            [e for e in events if "igrated" in e.get("log_format", "")], []
        )

    def test_roundTrip(self) -> None:
        """
        What is written is read back byte for byte, whatever the text
        (quotes, SQL, %s and ? that the parameter conversion must leave
        alone, Unicode), and decodes to what was said; and it survives
        reopening.
        """
        store = self.open_new()
        room = "café-日本"
        lines = [record(nick, kind, text) for nick, kind, text in ODD_LINES]
        store.insert({"café-日本": batch(T0, room, lines)})
        tails = store.tails(len(lines))
        self.assertEqual(tails, [(T0, "café-日本", line) for line in lines])
        self.assertEqual(
            [decode_record(when, line) for when, _, line in tails],
            [Entry(T0, nick, kind, text) for nick, kind, text in ODD_LINES],
        )
        self.assertEqual(self.reopen(store).tails(len(lines)), tails)

    def test_messagesView(self) -> None:
        """
        The messages view gives one row a line, in order, exactly as said,
        on both engines alike.
        """
        store = self.open_new()
        room = "café-日本"
        store.insert(
            {"café": batch(T0, room, [record(n, k, t) for n, k, t in ODD_LINES[:5]])}
        )
        store.insert(
            {
                "café": batch(
                    T0 + 1, room, [record(n, k, t) for n, k, t in ODD_LINES[5:]]
                )
            }
        )
        self.assertEqual(
            self.rows(
                store,
                "SELECT line, time, room, sender, kind, text FROM messages"
                " ORDER BY chunk, line",
            ),
            [
                (line, T0 + (i >= 5), room, nick, kind, text)
                for i, (nick, kind, text) in enumerate(ODD_LINES)
                for line in [i + 1 if i < 5 else i - 4]
            ],
        )

    def test_messagesViewKnowsEveryKind(self) -> None:
        store = self.open_new()
        kinds = get_args(Kind)
        store.insert(
            {"lobby": batch(T0, "lobby", [record("a", kind, "x") for kind in kinds])}
        )
        self.assertEqual(
            self.rows(store, "SELECT kind FROM messages ORDER BY chunk, line"),
            [(kind,) for kind in kinds],
        )

    def test_bigBatchIsChunked(self) -> None:
        """
        A room's batch bigger than CHUNK_BYTES is several chunks, cut at
        line ends, counted right, read back in order.
        """
        store = self.open_new()
        lines = [said("a", f"{i:04d} " + "y" * 3000) for i in range(20)]
        store.insert({"lobby": batch(T0, "lobby", lines)})
        rows = self.rows(store, "SELECT count, lines FROM history ORDER BY id")
        self.assertGreater(len(rows), 1)
        for count, blob in rows:
            self.assertEqual(count, bytes(blob).count(b"\n"))
        self.assertEqual(b"".join(bytes(blob) for _, blob in rows), b"".join(lines))
        self.assertEqual([line for _, _, line in store.tails(20)], lines)

    def test_tails(self) -> None:
        """
        At least the last C{keep} lines of every room, in whole chunks,
        oldest first, each dated by its chunk.
        """
        store = self.open_new()
        lobby = [said("a", f"lobby {i}") for i in range(7)]
        store.insert({"lobby": batch(T0, "lobby", lobby[:3])})
        store.insert(
            {
                "lobby": batch(T0 + 1, "lobby", lobby[3:5]),
                "python": batch(T0 + 1, "Python", [acted("b", "waves")]),
            }
        )
        store.insert({"lobby": batch(T0 + 2, "lobby", lobby[5:])})
        times = [T0] * 3 + [T0 + 1] * 2 + [T0 + 2] * 2
        tails = store.tails(3)
        got = [(when, line) for when, key, line in tails if key == "lobby"]
        self.assertEqual(got, list(zip(times, lobby, strict=True))[-len(got) :])
        self.assertTrue(3 <= len(got) < 7)
        self.assertEqual(
            [(when, line) for when, key, line in tails if key == "python"],
            [(T0 + 1, acted("b", "waves"))],
        )
        self.assertEqual(
            [(when, line) for when, key, line in store.tails(100) if key == "lobby"],
            list(zip(times, lobby, strict=True)),
        )

    def test_emptyTails(self) -> None:
        self.assertEqual(self.open_new().tails(10), [])

    def test_manyChunks(self) -> None:
        """
        A room of more chunks than one read fetches: tails and pages walk
        on, batch after batch, and stop where they have enough.
        """
        self.patch(store_module, "FIRST_BATCH", 2)
        self.patch(store_module, "LAST_BATCH", 5)
        store = self.open_new()
        for i in range(40):
            store.insert({"lobby": batch(T0 + i, "lobby", [said("a", f"{i}")])})
        self.assertEqual(
            [decode_record(w, r).text for w, _, r in store.tails(25)],
            [str(i) for i in range(15, 40)],
        )
        page = store.page("lobby", 30, None, 5)
        assert page is not None
        lines, older = page
        self.assertEqual(
            [decode_record(w, r).text for w, r in lines], [str(i) for i in range(5, 35)]
        )
        assert older is not None
        rest = store.page("lobby", 100, older, 0)
        assert rest is not None
        self.assertEqual(
            [decode_record(w, r).text for w, r in rest[0]], [str(i) for i in range(5)]
        )
        self.assertIsNone(rest[1])

    def test_pages(self) -> None:
        """
        Pages of older lines, newest first from a place or past the
        newest C{skip}; a place in another room's chunk gives None.
        """
        store = self.open_new()
        store.insert({"lobby": batch(T0, "lobby", [said("a", t) for t in "123"])})
        store.insert({"other": batch(T0, "other", [said("a", "x")])})
        store.insert({"lobby": batch(T0 + 1, "lobby", [said("a", t) for t in "45"])})
        page = store.page("lobby", 2, None, 1)
        assert page is not None
        lines, older = page
        self.assertEqual([r for _, r in lines], [said("a", "3"), said("a", "4")])
        self.assertEqual([w for w, _ in lines], [T0, T0 + 1])
        assert older is not None
        page = store.page("lobby", 5, older, 0)
        assert page is not None
        self.assertEqual([r for _, r in page[0]], [said("a", "1"), said("a", "2")])
        self.assertIsNone(page[1])
        (other,) = self.rows(store, "SELECT id FROM history WHERE room_key = 'other'")
        self.assertIsNone(store.page("lobby", 5, (other[0], 1), 0))

    def fill(self, store: Store) -> None:
        """
        lobby: chunks of 2 lines at T0, T0 + 100 and T0 + 200; python: one
        chunk of 1 line at T0 + 50.
        """
        for i, when in enumerate([T0, T0 + 100, T0 + 200]):
            store.insert(
                {"lobby": batch(when, "lobby", [said("a", f"{i}.{j}") for j in (0, 1)])}
            )
            if i == 0:
                store.insert({"python": batch(T0 + 50, "python", [said("b", "p")])})

    def texts(self, store: Store, room: str) -> list[str]:
        return [
            decode_record(when, line).text
            for when, key, line in store.tails(1000)
            if key == room
        ]

    def test_prune(self) -> None:
        """
        Retention by lines per room (whole chunks beyond the last N go)
        and by age; each says how many lines went.
        """
        store = self.open_new()
        self.fill(store)
        self.assertEqual(store.prune(3, 0), 2)
        self.assertEqual(self.texts(store, "lobby"), ["1.0", "1.1", "2.0", "2.1"])
        self.assertEqual(store.prune(3, 0), 0)
        self.assertEqual(store.prune(0, T0 + 100), 1)
        self.assertEqual(self.texts(store, "python"), [])
        self.assertEqual(store.prune(0, 0), 0)
        self.assertEqual(store.prune(0, T0 + 1000), 4)
        self.assertEqual(store.tails(1000), [])

    def test_pruneBoth(self) -> None:
        store = self.open_new()
        self.fill(store)
        self.assertEqual(store.prune(1, T0 + 60), 2 + 1 + 2)
        self.assertEqual(self.texts(store, "lobby"), ["2.0", "2.1"])

    def test_topics(self) -> None:
        """A topic set, replaced and cleared is stored as the last one."""
        store = self.open_new()
        first = Topic("Python", "snakes 'n' %s ?", "alice", T0)
        store.insert({"python": _with_topic(batch(T0, "Python", []), first)})
        store.insert({"lobby": _with_topic(batch(T0, "lobby", []), first)})
        self.assertEqual(sorted(store.topics()), [("lobby", first), ("python", first)])
        second = Topic("Python", "日本語", "bob", T0 + 1)
        cleared = Topic("lobby", "", "bob", T0 + 2)
        store.insert(
            {
                "python": _with_topic(batch(T0 + 1, "Python", []), second),
                "lobby": _with_topic(batch(T0 + 2, "lobby", []), cleared),
            }
        )
        self.assertEqual(self.reopen(store).topics(), [("python", second)])

    def test_accounts(self) -> None:
        """
        A new account is stored only if its name is nobody's: the second
        insert of a name says False and changes nothing. A password change
        is an update. Quotes and SQL are kept exactly.
        """
        store = self.open_new()
        nick = "O'Brien\"; DROP TABLE accounts; --"
        hashed = "$argon2id$v=19$'quote\"d'$); DELETE FROM history; -- %s ?"
        self.assertTrue(store.insert_account("o'brien", nick, hashed, T0))
        self.assertFalse(store.insert_account("o'brien", "other", "other", T0 + 1))
        self.assertTrue(store.insert_account("名前", "名前", "h2", T0))
        self.assertEqual(store.account("o'brien"), Account(nick, hashed))
        self.assertIsNone(store.account("nobody"))
        self.assertTrue(store.set_password("o'brien", "new hash"))
        self.assertFalse(store.set_password("nobody", "x"))
        again = self.reopen(store)
        self.assertEqual(
            again.accounts(),
            {"o'brien": Account(nick, "new hash"), "名前": Account("名前", "h2")},
        )
        self.assertEqual(
            self.rows(again, "SELECT created FROM accounts WHERE nick_key = ?", "名前"),
            [(T0,)],
        )
        # The upsert the tests and tools use keeps the name and the date.
        again.save_account("名前", "changed", "h3", T0 + 9)
        self.assertEqual(again.account("名前"), Account("名前", "h3"))

    def test_rooms(self) -> None:
        """Registered rooms are saved, replaced and forgotten whole."""
        store = self.open_new()
        store.save_room(CAFE, T0)
        store.save_room(PLAIN, T0)
        self.assertEqual(store.rooms(), [CAFE, PLAIN])
        changed = dataclasses.replace(PLAIN, moderated=True)
        store.write_rooms({PLAIN.key: changed, CAFE.key: None}, T0 + 1)
        self.assertEqual(self.reopen(store).rooms(), [changed])

    def test_badRoomSkipped(self) -> None:
        store = self.open_new()
        store.save_room(PLAIN, T0)
        store.connection.execute(
            "INSERT INTO rooms (key, name, founder, settings, bans, quiets,"
            " op_accounts, updated) VALUES ('bad', 'Bad', 'x', '{', '[]', '[]',"
            " '[]', 0)",
            (),
        )
        with capturedLogs() as events:
            self.assertEqual(store.rooms(), [PLAIN])
        [skipped] = [e for e in events if "Skipped" in e.get("log_format", "")]
        self.assertEqual(skipped["key"], "bad")

    def test_serverBans(self) -> None:
        """
        Server bans come back oldest first, those set at one time in the
        order they were set; setting one again makes it the newest.
        """
        store = self.open_new()
        first = ServerBan("*!*@10.0.0.0/8", "boss", T0, None, "spam %s")
        second = ServerBan("$a:bob", "boss", T0, T0 + 60, "")
        earlier = ServerBan("*!*@1.2.3.4", "boss", T0 - 1, None, "x")
        for ban in (first, second, earlier):
            store.save_server_ban(ban)
        self.assertEqual(store.server_bans(), [earlier, first, second])
        again = ServerBan("*!*@10.0.0.0/8", "other", T0, None, "again")
        store.save_server_ban(again)
        store.delete_server_ban("*!*@1.2.3.4")
        self.assertEqual(self.reopen(store).server_bans(), [second, again])

    def test_audit(self) -> None:
        store = self.open_new()
        entries = [
            AuditEntry(T0 + i, "boss", "kill", f"user{i}", "", f"'{i}' %s")
            for i in range(5)
        ]
        for entry in entries:
            store.save_audit(entry)
        self.assertEqual(store.audit(3), entries[2:])
        self.assertEqual(self.reopen(store).audit(10), entries)


def _with_topic(unwritten: Any, topic: Topic) -> Any:
    unwritten.topic = topic
    return unwritten


class SQLiteStoreTests(StoreBehaviour, unittest.SynchronousTestCase):
    def open_new(self) -> Store:
        store, self.path = new_store(self)
        return store

    def reopen(self, store: Store) -> Store:
        store.close()
        again = open_store(str(self.path))
        self.addCleanup(again.close)
        return again


class PostgresStoreTests(StoreBehaviour, unittest.SynchronousTestCase):
    def open_new(self) -> Store:
        self.url = fresh_url(self)
        store = open_postgres(self.url)
        self.addCleanup(store.close)
        return store

    def reopen(self, store: Store) -> Store:
        store.close()
        again = open_postgres(self.url)
        self.addCleanup(again.close)
        return again


class SchemaTests(unittest.SynchronousTestCase):
    """
    The schema's templates (what PostgreSQL is made from) are what the
    SQLite migrations make, so the engines have one shape.
    """

    def test_templatesAreTheMigrations(self) -> None:
        migrated, _ = new_store(self)
        fresh = sqlite3.connect(":memory:")
        self.addCleanup(fresh.close)
        for statement in current_schema(SQLITE):
            fresh.execute(statement)
        for table in CURRENT_TABLES:
            self.assertEqual(
                fresh.execute(f"PRAGMA table_info({table})").fetchall(),
                migrated.connection.execute(f"PRAGMA table_info({table})").fetchall(),
                table,
            )
        self.assertEqual(
            sorted(
                fresh.execute(
                    "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'"
                    " AND sql IS NOT NULL"
                )
            ),
            sorted(
                migrated.connection.execute(
                    "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'"
                    " AND sql IS NOT NULL"
                )
            ),
        )
        self.assertEqual(len(CURRENT_INDEXES), 1)

    def test_parameters(self) -> None:
        """? becomes %s for psycopg, and a literal % is doubled."""
        query = "SELECT * FROM t WHERE a = ? AND b LIKE '5%' AND c = ?"
        self.assertEqual(SQLITE.sql(query), query)
        self.assertEqual(
            POSTGRESQL.sql(query),
            "SELECT * FROM t WHERE a = %s AND b LIKE '5%%' AND c = %s",
        )


class PostgresSchemaTests(unittest.SynchronousTestCase):
    """What only PostgreSQL's side of the schema does."""

    def columns(self, url: str) -> dict[str, list[tuple[str, str]]]:
        store = open_postgres(url)
        self.addCleanup(store.close)
        found: dict[str, list[tuple[str, str]]] = {}
        for table, column, kind in store.connection.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name,"
            " ordinal_position",
            (),
        ):
            found.setdefault(table, []).append((column, kind))
        return found

    def test_shape(self) -> None:
        """
        The tables have SQLite's columns (and a seq for the server bans'
        order), with PostgreSQL's types for times, bytes and ids.
        """
        url = fresh_url(self)
        found = self.columns(url)
        sqlite, _ = new_store(self)
        for table in CURRENT_TABLES:
            names = [
                row[1]
                for row in sqlite.connection.execute(f"PRAGMA table_info({table})")
            ]
            extra = ["seq"] if table == "server_bans" else []
            self.assertEqual([c for c, _ in found[table]], extra + names, table)
        kinds = dict(found["history"])
        self.assertEqual(
            (kinds["id"], kinds["time"], kinds["lines"], kinds["count"]),
            ("bigint", "double precision", "bytea", "integer"),
        )
        self.assertEqual(found["schema_version"], [("version", "integer")])
        self.assertEqual(
            admin(self)
            .execute(
                "SELECT version FROM "
                + url.rsplit("application_name=", 1)[1]
                + ".schema_version"
            )
            .fetchall(),
            [(SCHEMA_VERSION,)],
        )

    def test_newerRefused(self) -> None:
        url = fresh_url(self)
        open_postgres(url).close()
        store = open_postgres(url)
        store.connection.execute("UPDATE schema_version SET version = 99", ())
        store.close()
        with self.assertRaises(DatabaseError) as caught:
            open_postgres(url)
        self.assertIn("schema version 99", str(caught.exception))
        self.assertIn(f"up to {SCHEMA_VERSION}", str(caught.exception))

    def test_strangerRefused(self) -> None:
        """A history table the server did not make is not taken for one."""
        url = fresh_url(self)
        admin(self).execute(
            "CREATE TABLE "
            + url.rsplit("application_name=", 1)[1]
            + ".history (id integer)"
        )
        with self.assertRaises(DatabaseError) as caught:
            open_postgres(url)
        self.assertIn("no schema_version", str(caught.exception))

    def test_startingTogether(self) -> None:
        """
        Servers starting at once on a new database make its tables once;
        every one of them opens it.
        """
        url = fresh_url(self)
        opened: list[object] = []

        def start() -> None:
            try:
                store = open_postgres(url)
            except Exception as e:
                opened.append(e)
            else:
                opened.append(store.migrate())
                store.close()

        threads = [threading.Thread(target=start) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(opened, [SCHEMA_VERSION] * 4)
        store = open_postgres(url)
        self.addCleanup(store.close)
        self.assertEqual(
            store.connection.execute(
                "SELECT count(*) FROM schema_version", ()
            ).fetchall(),
            [(1,)],
        )

    def test_unreachable(self) -> None:
        """
        No PostgreSQL where the URL says: one line that names the URL
        (never its password) and says why.
        """
        url = dead_url(self).replace("chat@", "chat:s3cret@")
        with self.assertRaises(DatabaseError) as caught:
            open_postgres(url)
        reason = str(caught.exception)
        self.assertTrue(reason.startswith("cannot connect to postgresql://chat:***@"))
        self.assertNotIn("s3cret", reason)
        self.assertNotIn("\n", reason)
