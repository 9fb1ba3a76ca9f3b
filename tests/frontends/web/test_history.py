"""
Tests for the web protocol's history request with C{before}: older lines a
page at a time, in memory, through the chat's own operation.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from chatservice.core.history import History, Place, Stored
from chatservice.frontends.limits import Limits
from tests.support.memory import Harness
from tests.support.web import WebClient, web_front_end


class OlderHistoryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = Harness(
            Limits(flood_rate=0),
            history=lambda clock: History(keep=8, clock=clock.seconds),
            replay=3,
        )
        self.site = web_front_end(self.harness)
        self.talker = self.client()
        self.talker.request({"type": "join", "room": "lobby"})
        for i in range(7):
            self.talker.request({"type": "say", "room": "lobby", "text": f"line {i}"})

    def client(self) -> WebClient:
        client = WebClient(self.harness, self.site)
        self.addCleanup(lambda: None if client.closing else client.lost())
        return client

    def reader(self) -> tuple[WebClient, dict[str, Any]]:
        """
        A client that joins the lobby, and the replay it was given.
        """
        reader = self.client()
        (replay,) = [
            e
            for e in reader.request({"type": "join", "room": "lobby"})
            if e["type"] == "replay"
        ]
        return reader, replay

    def older(
        self, client: WebClient, before: Any, n: int = 2, id: Any = 1
    ) -> list[dict[str, Any]]:
        return client.request(
            {"type": "history", "room": "lobby", "n": n, "before": before, "id": id}
        )

    def test_replayHandsOutACursor(self) -> None:
        _, replay = self.reader()
        self.assertEqual(
            [line["text"] for line in replay["lines"]], ["line 4", "line 5", "line 6"]
        )
        self.assertIsInstance(replay["before"], str)

    def test_pagesToTheBeginning(self) -> None:
        reader, replay = self.reader()
        before = replay["before"]
        pages = []
        while before is not None:
            found = self.older(reader, before)
            self.assertEqual([e["type"] for e in found], ["replay", "ok"])
            page = found[0]
            self.assertEqual(page["room"], "lobby")
            pages.append([line["text"] for line in page["lines"]])
            before = page["before"]
        self.assertEqual(pages, [["line 2", "line 3"], ["line 0", "line 1"]])

    def test_linesCarryTheirFields(self) -> None:
        reader, replay = self.reader()
        (page, _) = self.older(reader, replay["before"], n=1)
        (line,) = page["lines"]
        self.assertEqual(set(line), {"time", "kind", "nick", "text"})
        self.assertEqual(line["kind"], "message")

    def test_garbageCursor(self) -> None:
        reader, _ = self.reader()
        self.assertEqual(
            self.older(reader, "nonsense", id="g"),
            [{"type": "error", "code": "bad_cursor", "cursor": "nonsense", "id": "g"}],
        )
        # The connection goes on.
        self.assertEqual(
            reader.request({"type": "ping", "id": 2}), [{"type": "ok", "id": 2}]
        )

    def test_cursorMustBeAString(self) -> None:
        reader, _ = self.reader()
        self.assertEqual(
            self.older(reader, 12),
            [
                {
                    "type": "error",
                    "code": "bad_field",
                    "field": "before",
                    "expected": "a string",
                    "id": 1,
                }
            ],
        )

    def test_otherRoomsCursor(self) -> None:
        self.talker.request({"type": "join", "room": "dev"})
        for i in range(5):
            self.talker.request({"type": "say", "room": "dev", "text": f"dev {i}"})
        reader, replay = self.reader()
        found = reader.request({"type": "join", "room": "dev"})
        (dev,) = [e for e in found if e["type"] == "replay"]
        self.assertEqual(self.older(reader, dev["before"])[0]["code"], "bad_cursor")
        self.assertEqual(self.older(reader, replay["before"])[0]["type"], "replay")

    def test_notInRoom(self) -> None:
        _, replay = self.reader()
        outsider = self.client()
        self.assertEqual(
            self.older(outsider, replay["before"]),
            [{"type": "error", "code": "not_in_room", "room": "lobby", "id": 1}],
        )

    def test_withoutBeforeAsBefore(self) -> None:
        reader, _ = self.reader()
        (page,) = reader.request({"type": "history", "room": "lobby", "n": 2})
        self.assertEqual([line["text"] for line in page["lines"]], ["line 5", "line 6"])
        self.assertIsInstance(page["before"], str)

    def test_emptyPage(self) -> None:
        """
        A room whose every line the client has: an empty replay, with no
        cursor.
        """
        reader = self.client()
        reader.request({"type": "join", "room": "quiet"})
        (page,) = reader.request({"type": "history", "room": "quiet"})
        self.assertEqual(
            page, {"type": "replay", "room": "quiet", "lines": [], "before": None}
        )


class StoredPageTests(SynchronousTestCase):
    """
    A page the database answers later: the reply waits for it, and a client
    gone meanwhile is told nothing.
    """

    def setUp(self) -> None:
        self.asked: list[Deferred[Stored | None]] = []
        self.harness = Harness(
            Limits(flood_rate=0),
            history=lambda clock: History(keep=2, clock=clock.seconds, persist=True),
            replay=2,
        )
        self.history = self.harness.chat.history
        assert self.history is not None
        self.history.archive = self.archive
        self.site = web_front_end(self.harness)
        self.client = WebClient(self.harness, self.site)
        self.client.request({"type": "join", "room": "lobby"})
        for i in range(4):
            self.client.request({"type": "say", "room": "lobby", "text": f"line {i}"})

    def archive(
        self, room_key: str, n: int, place: Place | None, skip: int
    ) -> Deferred[Stored | None]:
        d: Deferred[Stored | None] = Deferred()
        self.asked.append(d)
        return d

    def test_answeredWhenTheDatabaseAnswers(self) -> None:
        before = self.history.before("lobby", 2)
        found = self.client.request(
            {"type": "history", "room": "lobby", "n": 5, "before": before, "id": 7}
        )
        self.assertEqual(found, [])
        (d,) = self.asked
        d.callback(([(1.0, b"malice old\n")], None))
        self.harness.turn()
        page, ok = self.client.events()
        # Lines 0 and 1 left the tail but are not written yet: they come
        # from the unwritten buffer, after what the database gave.
        self.assertEqual(
            [line["text"] for line in page["lines"]], ["old", "line 0", "line 1"]
        )
        self.assertEqual(ok, {"type": "ok", "id": 7})

    def test_goneMeanwhile(self) -> None:
        before = self.history.before("lobby", 2)
        self.client.request(
            {"type": "history", "room": "lobby", "n": 5, "before": before, "id": 7}
        )
        self.client.lost()
        self.asked[0].callback(([(1.0, b"malice old\n")], None))
        self.harness.turn()
        self.assertEqual(self.client.transport.value(), b"")
