"""
Tests for L{chatservice.storage.database}: the database service, its group
commit, retries, retention and orderly stop, on the real reactor.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.trial import unittest
from zope.interface import implementer

from chatservice.core.accounts import Account
from chatservice.core.audit import Audit, AuditEntry
from chatservice.core.history import ACTION, Entry, History, Unwritten
from chatservice.core.server_bans import ServerBan, ServerBans
from chatservice.storage import database as database_module
from chatservice.storage.database import Database
from chatservice.storage.schema import SCHEMA_VERSION
from chatservice.storage.store import open_store
from tests.storage.helpers import (
    T0,
    VERSION_1_ENTRIES,
    Ticker,
    acted,
    batch,
    in_order,
    read_file,
    said,
    version_1_file,
)
from tests.support.helpers import TIMEOUT, deferred_test, make_temp_dir


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
        self.history.record(room.lower(), room, [said(nick, text) for text in texts])

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
                "lobby": said("alice", "first") + said("alice", "second"),
                "python": said("alice", "other room"),
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
            {"lobby": batch(T0, "lobby", [said("a", f"{i}") for i in range(5)])}
        )
        store.insert({"python": batch(T0 + 1, "Python", [acted("b", "waves")])})
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
        store.insert({"old": batch(now - 10 * 86400, "old", [said("a", "x")])})
        for i in range(10):
            store.insert({"lobby": batch(now, "lobby", [said("a", f"{i}")])})
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
        store.insert({"old": batch(1.0, "old", [said("a", "x")])})
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

    @deferred_test
    async def test_olderPagesFromTheDatabaseThread(self) -> None:
        """
        Lines older than the tail are read on the database thread, after
        the writes asked for before them; stopping takes the archive away.
        """
        self.history = History(keep=2, clock=self.clock, persist=True)
        database = self.database(interval=60.0)
        self.say("lobby", "one", "two", "three")
        self.say("lobby", "four", "five")
        await database.write_all()
        self.say("lobby", "six")
        before = self.history.before("lobby", 2)
        page = await self.history.page("lobby", 10, before)
        self.assertEqual(
            [entry.text for entry in page.lines], ["one", "two", "three", "four"]
        )
        self.assertIsNone(page.before)
        await database.stopService()
        self.assertIsNone(self.history.archive)


class ModerationStorageTests(unittest.TestCase):
    """
    Server bans and the audit log are loaded when the database starts, and
    what is set afterwards is written on the database thread.
    """

    def setUp(self) -> None:
        self.path = make_temp_dir(self) / "chat.sqlite3"
        self.clock = Ticker()

    def start(self) -> tuple[Database, ServerBans, Audit]:
        bans = ServerBans(lambda: T0)
        audit = Audit(lambda: T0)
        database = Database(
            str(self.path),
            History(clock=self.clock),
            {},
            reactor,
            server_bans=bans,
            audit=audit,
        )
        database.startService()
        return database, bans, audit

    @deferred_test
    async def test_storedAcrossRestarts(self) -> None:
        database, bans, audit = self.start()
        kept = bans.add(ServerBan("*!*@10.0.0.0/8", "boss", T0, None, "spam"))
        bans.add(ServerBan("$a:bob", "boss", T0, T0 + 60, ""))
        bans.add(ServerBan("*!*@1.2.3.4", "boss", T0, None, "x"))
        bans.remove("1.2.3.4")
        audit.record("boss", "kill", "bob", detail="flood")
        await database.stopService()
        database, bans, audit = self.start()
        self.addCleanup(database.stopService)
        self.assertEqual(
            bans.entries(), [kept, ServerBan("$a:bob", "boss", T0, T0 + 60, "")]
        )
        self.assertEqual(
            audit.recent(5), [AuditEntry(T0, "boss", "kill", "bob", "", "flood")]
        )
