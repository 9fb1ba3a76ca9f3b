"""
Registered rooms through the database service: written as they change, off
the reactor thread, and the chat's again when a new chat and database start
on the same file (a restart, in process, on the real reactor).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial import unittest

from chatservice.core import errors
from chatservice.core.accounts import Account
from chatservice.core.chat import Chat
from chatservice.core.history import History
from chatservice.core.moderation import RoomRecord
from chatservice.core.rooms import Member
from chatservice.storage import database as database_module
from chatservice.storage.database import Database
from chatservice.storage.store import open_store
from tests.core.test_chat import EventRenderer, EventSession
from tests.storage.helpers import Ticker
from tests.storage.test_database import Observed, fire_from_thread
from tests.support.helpers import TIMEOUT, deferred_test, make_temp_dir


class Session(EventSession):
    """A session with a peer address, as the front ends' have."""

    def __init__(self, address: str) -> None:
        super().__init__(EventRenderer())
        self.address = address


class Server:
    """
    A chat and its database on a file, wired as L{chatservice.server.tap}
    wires them: what one run of the server keeps in process.
    """

    def __init__(self, testcase: unittest.TestCase, path: str, clock: Ticker) -> None:
        self.history = History(clock=clock, persist=True)
        self.accounts: dict[str, Account] = {}
        self.chat = Chat(
            schedule=lambda flush: reactor.callLater(0, flush),
            history=self.history,
            registered=self.accounts,
        )
        self.database = Database(
            path, self.history, self.accounts, reactor, load_rooms=self.chat.load_rooms
        )
        self.chat.save_room = self.database.save_room
        self.chat.forget_room = self.database.forget_room
        self.database.startService()

        def stop() -> Deferred[None] | None:
            if self.database.running:
                return self.database.stopService()
            return None

        testcase.addCleanup(stop)

    def connect(
        self, nick: str, account: str | None = None, address: str = "192.0.2.1"
    ) -> Member:
        return self.chat.connect(Session(address), nick, account)


class RestartTests(unittest.TestCase):
    def setUp(self) -> None:
        self.path = str(make_temp_dir(self) / "chat.sqlite3")
        self.clock = Ticker()

    def server(self) -> Server:
        return Server(self, self.path, self.clock)

    @deferred_test
    async def test_registeredRoomComesBack(self) -> None:
        """
        A registered room's founder, settings, bans, mutes, operator
        accounts and topic are all there after a restart; its founder is
        its operator on entering under another nickname; a ban that ran
        out while the server was down is not.
        """
        first = self.server()
        chat = first.chat
        alice = first.connect("alice", "alice")
        bob = first.connect("bob", "bob")
        room = chat.join(alice, "Café")
        chat.join(bob, "café")
        chat.set_topic(alice, room, "Tout sur le café ☕ 日本語")
        chat.register_room(alice, room)
        chat.set_setting(alice, room, "moderated", True)
        chat.set_setting(alice, room, "key", "sésame")
        chat.set_setting(alice, room, "limit", 10)
        chat.add_mask(alice, room, "ban", "mallory", reason="spam 日本語")
        chat.add_mask(alice, room, "ban", "*!*@10.0.0.0/8", duration=60)
        chat.add_mask(alice, room, "quiet", "$a:carol", duration=3600)
        chat.op(alice, room, "bob")
        kept = chat.room_records["café"]
        self.assertEqual(kept.op_accounts, frozenset({"alice", "bob"}))
        await first.database.stopService()

        self.clock.now += 120
        second = self.server()
        chat = second.chat
        self.assertEqual(chat.room_records, {"café": kept})
        self.assertNotIn("café", chat.rooms)

        mallory = second.connect("mallory")
        self.assertRaises(errors.Banned, chat.join, mallory, "café", key="sésame")
        # The ban on 10.0.0.0/8 ran out while the server was down.
        dave = second.connect("dave", address="10.1.2.3")
        self.assertRaises(errors.BadKey, chat.join, dave, "café")
        room = chat.join(dave, "café", key="sésame")
        self.assertEqual(room.operators, set())
        self.assertEqual(chat.room_records["café"].name, "Café")
        self.assertEqual(room.founder, "alice")
        self.assertEqual((room.moderated, room.key, room.limit), (True, "sésame", 10))
        self.assertEqual(sorted(room.bans), ["mallory!*@*"])
        self.assertEqual(room.bans["mallory!*@*"][1].reason, "spam 日本語")
        self.assertEqual(sorted(room.quiets), ["$a:carol"])
        self.assertEqual(room.op_accounts, {"alice", "bob"})
        assert room.topic is not None
        self.assertEqual(room.topic.text, "Tout sur le café ☕ 日本語")

        alicia = second.connect("alicia", "alice")
        chat.join(alicia, "café")
        self.assertIn(alicia, room.operators)
        robert = second.connect("robert", "bob")
        chat.join(robert, "café")
        self.assertIn(robert, room.operators)

    @deferred_test
    async def test_unregisteredRoomForgotten(self) -> None:
        first = self.server()
        alice = first.connect("alice", "alice")
        room = first.chat.join(alice, "python")
        first.chat.register_room(alice, room)
        first.chat.set_setting(alice, room, "secret", True)
        first.chat.unregister_room(alice, room)
        await first.database.stopService()

        second = self.server()
        self.assertEqual(second.chat.room_records, {})
        bob = second.connect("bob")
        room = second.chat.join(bob, "python")
        self.assertEqual((room.founder, room.secret), (None, False))
        self.assertEqual(room.operators, {bob})

    @deferred_test
    async def test_changesOfOneTurnWrittenOnce(self) -> None:
        """
        Every change made to registered rooms in one turn of the reactor is
        one write, on the database thread, of each room's last state.
        """
        server = self.server()
        real = server.database.store.write_rooms
        calls: list[tuple[str | None, dict[str, RoomRecord | None]]] = []
        written: Deferred[None] = Deferred()

        def write_rooms(
            changes: Mapping[str, RoomRecord | None], updated: float | None = None
        ) -> None:
            calls.append((threading.current_thread().name, dict(changes)))
            real(changes, updated)
            fire_from_thread(written)

        server.database.store.write_rooms = write_rooms  # type: ignore[method-assign]
        chat = server.chat
        alice = server.connect("alice", "alice")
        python = chat.join(alice, "python")
        rust = chat.join(alice, "rust")
        chat.register_room(alice, python)
        chat.register_room(alice, rust)
        for n in range(1, 6):
            chat.set_setting(alice, python, "limit", n)
        chat.unregister_room(alice, rust)
        await written.addTimeout(TIMEOUT, reactor)
        self.assertEqual(len(calls), 1)
        thread, changes = calls[0]
        self.assertNotEqual(thread, threading.current_thread().name)
        self.assertEqual(changes, {"python": chat.room_records["python"], "rust": None})
        self.assertEqual(chat.room_records["python"].limit, 5)

    @deferred_test
    async def test_failedWriteLoggedAndRetried(self) -> None:
        """
        A failed write is logged and tried again, with the room's latest
        state; nothing is raised into the chat.
        """
        self.patch(database_module, "RETRY_INTERVAL", 0.001)
        log = Observed(self)
        server = self.server()
        real = server.database.store.write_rooms
        calls: list[dict[str, RoomRecord | None]] = []
        written: Deferred[None] = Deferred()

        def write_rooms(
            changes: Mapping[str, RoomRecord | None], updated: float | None = None
        ) -> None:
            calls.append(dict(changes))
            if len(calls) == 1:
                raise sqlite3.OperationalError("disk full")
            real(changes, updated)
            fire_from_thread(written)

        server.database.store.write_rooms = write_rooms  # type: ignore[method-assign]
        chat = server.chat
        alice = server.connect("alice", "alice")
        room = chat.join(alice, "python")
        chat.register_room(alice, room)
        await log.wait("Storing {count} registered room(s) failed")
        chat.set_setting(alice, room, "moderated", True)
        await written.addTimeout(TIMEOUT, reactor)
        self.assertEqual(len(calls), 2)
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.OperationalError)), 1)
        self.assertTrue(calls[1]["python"].moderated)  # type: ignore[union-attr]
        await server.database.stopService()
        store = open_store(self.path)
        self.addCleanup(store.close)
        self.assertEqual(store.rooms(), [chat.room_records["python"]])

    @deferred_test
    async def test_stopWritesPending(self) -> None:
        """
        A change made just before the server stops is written by the stop.
        """
        server = self.server()
        alice = server.connect("alice", "alice")
        room = server.chat.join(alice, "python")
        server.chat.register_room(alice, room)
        await server.database.stopService()
        store = open_store(self.path)
        self.addCleanup(store.close)
        self.assertEqual(store.rooms(), [server.chat.room_records["python"]])

    @deferred_test
    async def test_corruptRowDoesNotStopStart(self) -> None:
        first = self.server()
        alice = first.connect("alice", "alice")
        for name in ("good", "bad"):
            first.chat.register_room(alice, first.chat.join(alice, name))
        await first.database.stopService()
        db = sqlite3.connect(self.path)
        db.execute("UPDATE rooms SET quiets = 'oops' WHERE key = 'bad'")
        db.commit()
        db.close()
        log = Observed(self)
        second = self.server()
        self.assertEqual(sorted(second.chat.room_records), ["good"])
        self.assertEqual(
            [e["key"] for e in log.formats("Skipped registered room")], ["bad"]
        )
        self.assertTrue(second.database.running)
