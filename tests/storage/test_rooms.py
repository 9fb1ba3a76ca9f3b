"""
Tests for registered rooms in the SQLite file: L{chatservice.storage.rooms}
(a L{RoomRecord} as a row) and the L{Store}'s queries on the C{rooms} table.
"""

from __future__ import annotations

import json

from twisted.logger import capturedLogs
from twisted.trial import unittest

from chatservice.core.events import Ban
from chatservice.core.moderation import RoomRecord
from chatservice.core.names import fold
from chatservice.storage.rooms import from_row, to_row
from tests.storage.helpers import T0, new_store

ROOMS = "SELECT key, name, founder, settings, bans, quiets, op_accounts FROM rooms"

# A room with every setting away from its default, Unicode everywhere, a
# ban for ever and one that expires, and a quiet.
CAFE = RoomRecord(
    fold("Café☕"),
    "Café☕",
    fold("名前"),
    invite_only=True,
    room_key="sésame",
    limit=12,
    moderated=True,
    no_external=False,
    secret=True,
    topic_locked=False,
    bans=(
        Ban("mallory!*@*", "名前", T0, None, "spam, 'quoted' \"too\""),
        Ban("*!*@10.0.0.0/8", "bob", T0 + 1.5, T0 + 3600.25, ""),
        Ban("$a:trõll*", "bob", T0 + 2, T0 + 60, "日本語の理由 😀"),
    ),
    quiets=(Ban("ünïcode!*@*", "bob", T0 + 3, T0 + 600, "calm down"),),
    op_accounts=frozenset({fold("名前"), "bob", "Ωmega".casefold()}),
)

# A registered room as it is when just registered by someone alone in it.
PLAIN = RoomRecord("lobby", "Lobby", "alice", op_accounts=frozenset({"alice"}))


def row(**columns: object) -> tuple[object, ...]:
    """A row of the rooms table: L{PLAIN}'s, with C{columns} changed."""
    names = ("key", "name", "founder", "settings", "bans", "quiets", "op_accounts")
    values = dict(zip(names, to_row(PLAIN, T0), strict=False))
    values.update(columns)
    return (*(values[name] for name in names), T0)


class RowTests(unittest.SynchronousTestCase):
    """
    L{to_row} and L{from_row}, without a file.
    """

    def test_roundTrip(self) -> None:
        for record in (CAFE, PLAIN):
            self.assertEqual(from_row(to_row(record, T0)), record)

    def test_readableJSON(self) -> None:
        """
        The columns are JSON a person can read: Unicode as it is, settings
        by name, each ban an object.
        """
        _, name, founder, settings, bans, quiets, ops, updated = to_row(CAFE, T0 + 5)
        self.assertEqual((name, founder, updated), ("Café☕", "名前", T0 + 5))
        self.assertEqual(
            json.loads(settings),
            {
                "invite_only": True,
                "moderated": True,
                "no_external": False,
                "secret": True,
                "topic_locked": False,
                "key": "sésame",
                "limit": 12,
            },
        )
        self.assertIn("日本語の理由 😀", bans)
        self.assertEqual(
            json.loads(bans)[1],
            {
                "mask": "*!*@10.0.0.0/8",
                "by": "bob",
                "at": T0 + 1.5,
                "expires": T0 + 3600.25,
                "reason": "",
            },
        )
        self.assertEqual(len(json.loads(quiets)), 1)
        self.assertEqual(json.loads(ops), sorted(CAFE.op_accounts))

    def test_emptyLists(self) -> None:
        record = RoomRecord("empty", "empty", "alice")
        columns = to_row(record, T0)
        self.assertEqual(columns[4:7], ("[]", "[]", "[]"))
        self.assertEqual(from_row(columns), record)

    def test_maskMadeCanonical(self) -> None:
        """
        A mask written by hand in another spelling is read as the one the
        chat would have made of it, so that removing it works.
        """
        bans = json.dumps([{"mask": "BOB", "by": "x", "at": T0, "expires": None}])
        record = from_row(row(bans=bans))  # type: ignore[arg-type]
        self.assertEqual(record.bans, (Ban("bob!*@*", "x", T0, None, ""),))

    def test_refused(self) -> None:
        """
        A row that keeps no room raises L{ValueError} saying what is wrong
        with it.
        """
        bad = {
            "not JSON": row(settings="{invite_only: true"),
            "settings": row(settings="[]"),
            "setting moderated": row(
                settings=json.dumps(json.loads(to_row(PLAIN, T0)[3]) | {"moderated": 1})
            ),
            "setting invite_only": row(settings=json.dumps({"moderated": True})),
            "setting limit": row(
                settings=json.dumps(json.loads(to_row(PLAIN, T0)[3]) | {"limit": True})
            ),
            "bans is": row(bans="{}"),
            "ban entry": row(bans='["bob!*@*"]'),
            "ban mask": row(bans='[{"mask": "a b", "by": "x", "at": 0}]'),
            "ban mask '*!*@10.0.0.0/99'": row(
                bans='[{"mask": "*!*@10.0.0.0/99", "by": "x", "at": 0}]'
            ),
            "quiet at": row(quiets='[{"mask": "a", "by": "x", "at": "now"}]'),
            "quiet expires": row(
                quiets='[{"mask": "a", "by": "x", "at": 0, "expires": "soon"}]'
            ),
            "operator account": row(op_accounts="[1]"),
            "founder": row(founder=None),
        }
        for why, columns in bad.items():
            with self.subTest(why):
                with self.assertRaises(ValueError) as caught:
                    from_row(columns)  # type: ignore[arg-type]
                if why != "not JSON":
                    self.assertIn(why, str(caught.exception))


class StoreRoomTests(unittest.SynchronousTestCase):
    """
    L{Store.rooms}, L{Store.save_room}, L{Store.forget_room} and
    L{Store.write_rooms} on a real file.
    """

    def test_newFileHasNone(self) -> None:
        store, _ = new_store(self)
        self.assertEqual(store.rooms(), [])

    def test_saveAndRead(self) -> None:
        store, _ = new_store(self)
        store.save_room(CAFE, T0)
        store.save_room(PLAIN, T0)
        self.assertEqual(sorted(store.rooms(), key=lambda r: r.key), [CAFE, PLAIN])
        self.assertEqual(
            store.connection.execute(
                "SELECT key, name, founder, updated FROM rooms ORDER BY 1"
            ).fetchall(),
            [("café☕", "Café☕", "名前", T0), ("lobby", "Lobby", "alice", T0)],
        )

    def test_expiringBansKeptAsTheyAre(self) -> None:
        """
        The store keeps a ban's expiry to the fraction of a second and does
        not judge it: a ban that has run out is dropped by the chat when
        the room is made (L{chatservice.core.moderation}), not lost here
        because the clock moved.
        """
        store, _ = new_store(self)
        expired = RoomRecord(
            "r", "r", "alice", bans=(Ban("old!*@*", "alice", 1.0, 2.5, "long ago"),)
        )
        store.save_room(expired, T0)
        self.assertEqual(store.rooms(), [expired])

    def test_saveReplaces(self) -> None:
        store, _ = new_store(self)
        store.save_room(PLAIN, T0)
        changed = RoomRecord("lobby", "LOBBY", "alice", moderated=True)
        store.save_room(changed, T0 + 1)
        self.assertEqual(store.rooms(), [changed])
        self.assertEqual(
            store.connection.execute("SELECT count(*) FROM rooms").fetchall(), [(1,)]
        )

    def test_forget(self) -> None:
        store, _ = new_store(self)
        store.save_room(PLAIN, T0)
        store.save_room(CAFE, T0)
        store.forget_room("lobby")
        store.forget_room("never-registered")
        self.assertEqual(store.rooms(), [CAFE])

    def test_writeRooms(self) -> None:
        """
        Saves and forgets of several rooms go in one call, dated together.
        """
        store, _ = new_store(self)
        store.save_room(PLAIN, T0)
        store.write_rooms({"lobby": None, CAFE.key: CAFE}, T0 + 9)
        self.assertEqual(store.rooms(), [CAFE])
        self.assertEqual(
            store.connection.execute("SELECT updated FROM rooms").fetchall(),
            [(T0 + 9,)],
        )

    def test_corruptRowsSkipped(self) -> None:
        """
        Rows that keep no room are skipped, each with a log line naming the
        room and the file; the others are read.
        """
        store, path = new_store(self)
        store.save_room(PLAIN, T0)
        store.save_room(CAFE, T0)
        db = store.connection
        db.execute(
            "INSERT INTO rooms VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ("broken", "broken", "alice", "{not json", "[]", "[]", "[]", T0),
        )
        db.execute(
            "INSERT INTO rooms VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ("\x1b[2Jevil", "x", "alice", "{}", "[]", "[]", "[]", T0),
        )
        db.execute("UPDATE rooms SET bans = '[{}]' WHERE key = 'lobby'")
        with capturedLogs() as events:
            rooms = store.rooms()
        self.assertEqual(rooms, [CAFE])
        skipped = [e for e in events if "Skipped registered room" in e["log_format"]]
        self.assertEqual(sorted(e["key"] for e in skipped), ["broken", "evil", "lobby"])
        self.assertTrue(all(e["path"] == str(path) for e in skipped))
        self.assertTrue(all(e["log_level"].name == "error" for e in skipped))
