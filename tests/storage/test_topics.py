"""
Room topics kept by the history and stored in the database: set, cleared,
handed back after a failed write, written in the room's batch, and read
back when the database service starts.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.trial import unittest

from chatservice.core.accounts import Account
from chatservice.core.events import Topic
from chatservice.core.history import History
from chatservice.storage.database import Database
from chatservice.storage.store import open_store
from tests.storage.helpers import T0, batch, new_store, read_file, said
from tests.support.helpers import deferred_test, make_temp_dir

TOPICS = "SELECT room_key, room, topic, nick, time FROM topics ORDER BY room_key"


def topic(text: str, room: str = "Python", nick: str = "alice") -> Topic:
    return Topic(room, text, nick, T0)


class HistoryTopicTests(unittest.SynchronousTestCase):
    def test_setAndClear(self) -> None:
        """
        The history keeps each room's latest topic, by room key; an empty
        text clears it. Without persistence nothing is queued.
        """
        history = History()
        history.set_topic("python", topic("one"))
        history.set_topic("python", topic("two"))
        history.set_topic("lobby", topic("l", room="lobby"))
        self.assertEqual(
            history.topics,
            {"python": topic("two"), "lobby": topic("l", room="lobby")},
        )
        history.set_topic("python", topic(""))
        self.assertEqual(history.topics, {"lobby": topic("l", room="lobby")})
        self.assertIsNone(history.unwritten)

    def test_queuedWithTheRoomsLines(self) -> None:
        """
        A topic rides in its room's unwritten batch, the latest winning, and
        wakes the writer as lines do; it counts as no line.
        """
        woken = []
        history = History(clock=lambda: T0, persist=True)
        history.wake = lambda: woken.append(True)
        history.set_topic("python", topic("one"))
        self.assertEqual(woken, [True])
        history.record("python", "Python", [said("alice", "hi")])
        history.set_topic("python", topic("two"))
        unwritten = history.take()
        self.assertEqual(list(unwritten), ["python"])
        self.assertEqual(unwritten["python"].topic, topic("two"))
        self.assertEqual(unwritten["python"].count, 1)
        self.assertEqual(history.unwritten_lines(), 0)

    def test_giveBack(self) -> None:
        """
        A topic whose write failed goes back, unless one set since replaces
        it.
        """
        history = History(clock=lambda: T0, persist=True)
        history.set_topic("python", topic("old"))
        history.set_topic("lobby", topic("kept", room="lobby"))
        taken = history.take()
        history.set_topic("python", topic("new"))
        history.record("lobby", "lobby", [said("bob", "x")])
        history.give_back(taken)
        unwritten = history.unwritten
        assert unwritten is not None
        self.assertEqual(unwritten["python"].topic, topic("new"))
        self.assertEqual(unwritten["lobby"].topic, topic("kept", room="lobby"))
        self.assertEqual(unwritten["lobby"].count, 1)

    def test_load(self) -> None:
        history = History()
        history.load_topics([("python", topic("t"))])
        self.assertEqual(history.topics, {"python": topic("t")})


class StoreTopicTests(unittest.SynchronousTestCase):
    def test_insertAndRead(self) -> None:
        """
        Topics are written in the same call (and transaction) as lines, one
        row a room; a batch with a topic and no line adds no chunk.
        """
        store, _ = new_store(self)
        lines = batch(T0, "Python", [said("alice", "hi")])
        lines.topic = topic("Ünïcode 😀 'quotes'")
        only_topic = batch(T0, "lobby", [])
        only_topic.topic = topic("l", room="lobby", nick="bob")
        store.insert({"python": lines, "lobby": only_topic})
        self.assertEqual(
            sorted(store.topics(), key=lambda row: row[0]),
            [("lobby", only_topic.topic), ("python", topic("Ünïcode 😀 'quotes'"))],
        )
        self.assertEqual(
            store.connection.execute("SELECT room_key, count FROM history").fetchall(),
            [("python", 1)],
        )

    def test_replaceAndClear(self) -> None:
        store, _ = new_store(self)
        first = batch(T0, "Python", [])
        first.topic = topic("one")
        store.insert({"python": first})
        second = batch(T0, "Python", [])
        second.topic = Topic("Python", "two", "bob", T0 + 1)
        store.insert({"python": second})
        self.assertEqual(
            store.connection.execute(TOPICS).fetchall(),
            [("python", "Python", "two", "bob", T0 + 1)],
        )
        cleared = batch(T0, "Python", [])
        cleared.topic = topic("")
        store.insert({"python": cleared})
        self.assertEqual(store.topics(), [])


class DatabaseTopicTests(unittest.TestCase):
    @deferred_test
    async def test_writtenAndLoaded(self) -> None:
        """
        A topic set on a running server is written by the database thread
        and is every room's topic again when the service starts anew; it is
        not pruned with the room's lines.
        """
        path = make_temp_dir(self) / "chat.sqlite3"
        history = History(clock=lambda: T0, persist=True)
        database = Database(str(path), history, {}, reactor)
        database.startService()
        history.set_topic("python", topic("kept"))
        history.record("python", "Python", [said("alice", "a")])
        await database.stopService()
        self.assertEqual(
            read_file(path, TOPICS), [("python", "Python", "kept", "alice", T0)]
        )

        store = open_store(str(path))
        store.prune(0, T0 + 10)
        store.close()
        self.assertEqual(read_file(path, "SELECT count(*) FROM history"), [(0,)])

        again = History(clock=lambda: T0, persist=True)
        accounts: dict[str, Account] = {}
        database = Database(str(path), again, accounts, reactor)
        database.startService()
        self.addCleanup(database.stopService)
        self.assertEqual(again.topics, {"python": topic("kept")})
        self.assertEqual(again.unwritten, {})
