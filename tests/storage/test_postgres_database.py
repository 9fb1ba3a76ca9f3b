"""
The database service on PostgreSQL (C{--database postgresql://...}): the
adbapi pool's lane, what a restart reads back, registration unique across
servers, and what happens while PostgreSQL is down or restarts (through a
L{PostgresProxy} the test takes down, or by ending the server's
connections as a PostgreSQL restart would), on the real reactor.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from twisted.enterprise import adbapi
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import deferLater
from twisted.logger import LogEvent
from twisted.trial import unittest

from chatservice.core import errors
from chatservice.core.accounts import Account, Accounts
from chatservice.core.audit import Audit, AuditEntry
from chatservice.core.chat import Chat
from chatservice.core.events import Topic
from chatservice.core.history import History
from chatservice.core.moderation import RoomRecord
from chatservice.core.server_bans import ServerBan, ServerBans
from chatservice.server import tap
from chatservice.server.options import Options
from chatservice.storage import database as database_module
from chatservice.storage.database import Database
from chatservice.storage.postgres import open_postgres
from tests.core.test_accounts import (
    HASHER,
    PASSWORD,
    Recorder,
    served_accounts,
)
from tests.storage.helpers import T0, Ticker, batch, said
from tests.storage.test_database import Observed
from tests.support.helpers import TIMEOUT, deferred_test
from tests.support.postgres import fresh_url, proxied_url, terminate


def _errors() -> tuple[type[BaseException], ...]:
    """What a PostgreSQL that went away is logged as, by us and by adbapi."""
    import psycopg

    return (psycopg.Error, adbapi.ConnectionLost)


class PostgresDatabaseTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = Ticker()
        self.history = History(clock=self.clock, persist=True)
        self.accounts: dict[str, Account] = {}
        self.observed = Observed(self)
        self.patch(database_module, "RETRY_INTERVAL", 0.01)
        self.patch(database_module, "MAX_RETRY_INTERVAL", 0.04)

    async def logged(self, text: str) -> LogEvent:
        """
        The first event logged whose format holds C{text}, once logged: in
        a later turn of the reactor, not inside the log call.
        """
        event = await self.observed.wait(text)
        await deferLater(reactor, 0, lambda: None)
        return event

    def database(self, url: str, **kwargs: Any) -> Database:
        database = Database(url, self.history, self.accounts, reactor, **kwargs)
        database.startService()

        def stop() -> Deferred[None] | None:
            if database.running:
                return database.stopService()
            return None

        self.addCleanup(stop)
        return database

    def say(self, room: str, *texts: str, nick: str = "alice") -> None:
        self.history.record(room.lower(), room, [said(nick, text) for text in texts])

    def stored(self, url: str, room: str) -> list[str]:
        store = open_postgres(url)
        try:
            return [
                text
                for (text,) in store.connection.execute(
                    "SELECT text FROM messages WHERE room = ? ORDER BY chunk, line",
                    (room,),
                )
            ]
        finally:
            store.close()

    @deferred_test
    async def test_stopWritesEverything(self) -> None:
        """
        Lines said are written through the pool, off the reactor thread,
        in order; stopping writes the rest and closes the pool.
        """
        url = fresh_url(self)
        database = self.database(url, interval=60.0)
        self.assertTrue(database.shared)
        threads: list[str] = []
        database.query(lambda store: threads.append(threading.current_thread().name))
        for i in range(100):
            self.say("lobby", f"line {i}")
        self.say("Python", "elsewhere", nick="bob")
        await database.stopService()
        self.assertNotEqual(threads, [threading.current_thread().name])
        self.assertEqual(self.stored(url, "lobby"), [f"line {i}" for i in range(100)])
        self.assertEqual(self.stored(url, "Python"), ["elsewhere"])
        self.assertFalse(database.connections.running)

    @deferred_test
    async def test_groupCommit(self) -> None:
        """
        Lines said together are written together, in one group commit,
        without waiting for a stop.
        """
        url = fresh_url(self)
        database = self.database(url, interval=0.001)
        written: Deferred[float] = Deferred()

        class Writes:
            def observe(self, seconds: float) -> None:
                written.callback(seconds)

        database.stats.history_writes = Writes()  # type: ignore[assignment]
        self.say("lobby", "one", "two")
        self.say("python", "three")
        await written.addTimeout(TIMEOUT, reactor)
        self.assertEqual(self.history.unwritten, {})
        self.assertEqual(self.stored(url, "lobby"), ["one", "two"])
        self.assertEqual(self.stored(url, "python"), ["three"])

    @deferred_test
    async def test_everythingComesBack(self) -> None:
        """
        History, topics, accounts, registered rooms, server bans and the
        audit log written by one run are what the next run loads.
        """
        url = fresh_url(self)
        room = RoomRecord("python", "Python", "alice", op_accounts=frozenset({"alice"}))
        bans = ServerBans(lambda: T0)
        audit = Audit(lambda: T0)
        loaded: list[list[RoomRecord]] = []
        database = self.database(
            url, server_bans=bans, audit=audit, load_rooms=loaded.append
        )
        self.say("lobby", *[f"{i}" for i in range(5)])
        self.history.set_topic("python", Topic("Python", "snakes", "alice", T0))
        self.assertTrue(await database.save_account("alice", "Alice", "h1", T0, True))
        self.assertTrue(await database.save_account("alice", "Alice", "h2", T0, False))
        database.save_room(room)
        kept = bans.add(ServerBan("*!*@10.0.0.0/8", "boss", T0, None, "spam"))
        audit.record("boss", "kill", "bob", detail="flood")
        await database.stopService()

        self.history = History(keep=3, clock=self.clock, persist=True)
        self.accounts = {}
        bans, audit, loaded = ServerBans(lambda: T0), Audit(lambda: T0), []
        self.database(url, server_bans=bans, audit=audit, load_rooms=loaded.append)
        self.assertEqual(
            [e.text for e in self.history.recent("lobby", 10)], ["2", "3", "4"]
        )
        self.assertEqual(self.history.topics["python"].text, "snakes")
        self.assertEqual(self.accounts, {"alice": Account("Alice", "h2")})
        self.assertEqual(loaded, [[room]])
        self.assertEqual(bans.entries(), [kept])
        self.assertEqual(
            audit.recent(5), [AuditEntry(T0, "boss", "kill", "bob", "", "flood")]
        )

    @deferred_test
    async def test_olderPages(self) -> None:
        """
        Lines older than the tail are read through the pool, after the
        writes asked for before them.
        """
        url = fresh_url(self)
        self.history = History(keep=2, clock=self.clock, persist=True)
        database = self.database(url, interval=60.0)
        self.say("lobby", "one", "two", "three")
        self.say("lobby", "four", "five")
        await database.write_all()
        self.say("lobby", "six")
        before = self.history.before("lobby", 2)
        page = await self.history.page("lobby", 10, before)
        self.assertEqual(
            [entry.text for entry in page.lines], ["one", "two", "three", "four"]
        )

    @deferred_test
    async def test_pruneAtStart(self) -> None:
        url = fresh_url(self)
        now = time.time()
        store = open_postgres(url)
        store.insert({"old": batch(now - 10 * 86400, "old", [said("a", "x")])})
        for i in range(10):
            store.insert({"lobby": batch(now, "lobby", [said("a", f"{i}")])})
        store.close()
        database = self.database(url, max_per_room=3, days=1)
        await self.logged("Pruned {count} history lines")
        await database.stopService()
        self.assertEqual(self.stored(url, "lobby"), ["7", "8", "9"])
        self.assertEqual(self.stored(url, "old"), [])

    @deferred_test
    async def test_oneNameAcrossServers(self) -> None:
        """
        Two servers on one database register one name at the same moment:
        exactly one stores it; the other learns of it by looking it up.
        """
        url = fresh_url(self)
        first = self.database(url)
        second = Database(url, History(), {}, reactor)
        second.startService()
        self.addCleanup(second.stopService)
        self.assertIsNone(await second.account("bob"))
        results = await DeferredList(
            [
                first.save_account("bob", "Bob", "first", T0, True),
                second.save_account("bob", "bob", "second", T0, True),
            ],
            fireOnOneErrback=True,
        )
        self.assertEqual(sorted(ok for _, ok in results), [False, True])
        found = await second.account("bob")
        assert found is not None
        self.assertEqual(await first.account("bob"), found)
        self.assertIn(found.password_hash, ("first", "second"))

    @deferred_test
    async def test_postgresRestarts(self) -> None:
        """
        PostgreSQL ends the server's connections (a restart): the next
        write fails, is logged once and tried again on a new connection;
        nothing is lost.
        """
        url = fresh_url(self)
        database = self.database(url, interval=0.001)
        self.say("lobby", "before")
        await database.write_all()
        self.assertGreaterEqual(terminate(self, url), 1)
        self.say("lobby", "after")
        await self.logged("history lines failed; they will be tried again")
        await self.logged("Writing history works again")
        self.assertEqual(self.stored(url, "lobby"), ["before", "after"])
        self.flushLoggedErrors(*_errors())

    @deferred_test
    async def test_downAndBack(self) -> None:
        """
        While PostgreSQL is down the chat goes on: history waits in memory,
        is tried again with growing pauses (the traceback logged once, then
        a line a try), and is all written, in order, once it is back.
        """
        url, proxy = proxied_url(self)
        database = self.database(url, interval=0.001)
        self.say("lobby", "one")
        await database.write_all()
        proxy.down()
        self.say("lobby", "two")
        await self.logged("history lines failed; they will be tried again")
        self.say("lobby", "three")
        self.say("python", "elsewhere")
        again = await self.logged("history lines failed again")
        self.assertGreaterEqual(again["failures"], 2)
        self.assertEqual(len(self.observed.formats("will be tried again")), 1)
        proxy.restore()
        back = await self.logged("Writing history works again")
        self.assertGreaterEqual(back["failures"], 2)
        self.say("lobby", "four")
        await database.stopService()
        self.assertEqual(self.stored(url, "lobby"), ["one", "two", "three", "four"])
        self.assertEqual(self.stored(url, "python"), ["elsewhere"])
        self.flushLoggedErrors(*_errors())

    @deferred_test
    async def test_overflowWhileDown(self) -> None:
        """
        What PostgreSQL refuses past the bound is dropped, the oldest
        first, with a log line that counts it; what fits is written once
        it is back.
        """
        # Each record is "malice line N\n": 14 bytes for N < 10.
        self.patch(database_module, "MAX_UNWRITTEN", 14 * 4)
        url, proxy = proxied_url(self)
        database = self.database(url, interval=0.001)
        proxy.down()
        self.say("lobby", *[f"line {i}" for i in range(10)])
        dropped = await self.logged("refused history for too long")
        self.assertEqual(dropped["count"], 6)
        self.assertEqual(self.history.unwritten_lines(), 4)
        proxy.restore()
        await self.logged("Writing history works again")
        await database.stopService()
        self.assertEqual(self.stored(url, "lobby"), [f"line {i}" for i in range(6, 10)])
        self.flushLoggedErrors(*_errors())

    @deferred_test
    async def test_stopWhileDown(self) -> None:
        """A stop while PostgreSQL is down says how much is lost, and ends."""
        url, proxy = proxied_url(self)
        database = self.database(url, interval=60.0)
        proxy.down()
        self.say("lobby", "one", "two")
        await database.stopService()
        [lost] = self.observed.formats("could not be written and are lost")
        self.assertEqual(lost["count"], 2)
        self.flushLoggedErrors(*_errors())


def service(url: str) -> tap.ChatService:
    options = Options()
    options.parseOptions(["--database", url, "--port", "tcp:0:interface=127.0.0.1"])
    made = tap.makeService(options)
    assert isinstance(made, tap.ChatService)
    return made


class SharedAccountsTests(unittest.TestCase):
    """
    Accounts as C{twistd chat --database postgresql://...} wires them: read
    from PostgreSQL when someone logs in, failing clearly while it is down.
    """

    def start(self, url: str) -> tuple[Chat, Accounts]:
        made = service(url)
        database = made.database
        assert database is not None and made.chat is not None
        accounts = served_accounts(made)
        accounts.hasher = HASHER
        database.startService()
        self.addCleanup(database.stopService)
        return made.chat, accounts

    @deferred_test
    async def test_registeredOnAnotherServer(self) -> None:
        """
        An account registered on one server logs in on another that was
        started before it existed; a name taken on one cannot be registered
        on the other.
        """
        url = fresh_url(self)
        chat_a, accounts_a = self.start(url)
        chat_b, accounts_b = self.start(url)
        self.assertIsNotNone(accounts_b.lookup)
        alice = chat_a.connect(Recorder(), "alice")
        await Deferred.fromCoroutine(accounts_a.register(alice, PASSWORD))
        self.assertEqual(alice.account, "alice")

        guest = chat_b.connect(Recorder(), chat_b.guest_nick())
        await Deferred.fromCoroutine(accounts_b.login(guest, "alice", PASSWORD))
        self.assertEqual((guest.nick, guest.account), ("alice", "alice"))

        other = chat_b.connect(Recorder(), "bob")
        await Deferred.fromCoroutine(accounts_b.register(other, PASSWORD))
        on_a = chat_a.connect(Recorder(), "Bob")
        with self.assertRaises(errors.AlreadyRegistered):
            await Deferred.fromCoroutine(accounts_a.register(on_a, PASSWORD))

    @deferred_test
    async def test_registeredMeanwhileOnAnotherServer(self) -> None:
        """
        Another server stores the name between this one's look-up and its
        insert: RegisteredMeanwhile, and the other's account stands.
        """
        url = fresh_url(self)
        _, accounts_a = self.start(url)
        chat_b, accounts_b = self.start(url)
        save = accounts_b.save

        def race(*account: Any) -> Deferred[bool]:
            d = accounts_a.save("carol", "Carol", "theirs", T0, True)
            return d.addCallback(lambda _: save(*account))

        accounts_b.save = race
        carol = chat_b.connect(Recorder(), "carol")
        with self.assertRaises(errors.RegisteredMeanwhile):
            await Deferred.fromCoroutine(accounts_b.register(carol, PASSWORD))
        self.assertNotIn("carol", accounts_b.accounts)
        self.assertIsNone(carol.account)
        lookup = accounts_a.lookup
        assert lookup is not None
        self.assertEqual(await lookup("carol"), Account("Carol", "theirs"))

    @deferred_test
    async def test_downThenBack(self) -> None:
        """
        PostgreSQL down: logging in and registering fail with
        StoreUnavailable; once it is back, they work.
        """
        url, proxy = proxied_url(self)
        chat, accounts = self.start(url)
        alice = chat.connect(Recorder(), "alice")
        await Deferred.fromCoroutine(accounts.register(alice, PASSWORD))
        proxy.down()
        guest = chat.connect(Recorder(), chat.guest_nick())
        with self.assertRaises(errors.StoreUnavailable) as caught:
            await Deferred.fromCoroutine(accounts.login(guest, "alice", PASSWORD))
        self.assertEqual(caught.exception.what, "login")
        bob = chat.connect(Recorder(), "bob")
        with self.assertRaises(errors.StoreUnavailable) as caught:
            await Deferred.fromCoroutine(accounts.register(bob, PASSWORD))
        self.assertEqual(caught.exception.what, "register")
        proxy.restore()
        await Deferred.fromCoroutine(accounts.login(guest, "alice", PASSWORD))
        self.assertEqual(guest.account, "alice")
        await Deferred.fromCoroutine(accounts.register(bob, PASSWORD))
        self.assertEqual(bob.account, "bob")
        self.flushLoggedErrors(*_errors())
