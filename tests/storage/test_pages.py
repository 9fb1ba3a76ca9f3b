"""
Tests for paging through a room's older history (L{History.page} and
L{Store.page}): in memory, in SQLite, and across the line where the tail
in memory ends and the database's chunks go on.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.trial import unittest

from chatservice.core.errors import BadCursor
from chatservice.core.history import History, Page, Place, Stored
from tests.storage.helpers import T0, Ticker, batch, new_store, said


def texts(page: Page) -> list[str]:
    return [entry.text for entry in page.lines]


class Paging:
    """
    What the tests share: a history, lines said in turns, and pages read.
    """

    history: History
    clock: Ticker

    def say(self, room: str, *texts: str) -> None:
        self.clock.now += 1
        self.history.record(room.lower(), room, [said("alice", t) for t in texts])

    def page(
        self,
        testcase: unittest.SynchronousTestCase,
        room: str,
        n: int,
        before: str | None,
    ) -> Page:
        page: Page = testcase.successResultOf(
            Deferred.fromCoroutine(self.history.page(room, n, before))
        )
        return page

    def walk(
        self, testcase: unittest.SynchronousTestCase, room: str, n: int
    ) -> list[list[str]]:
        """
        Every page of a room, newest first, following the cursors to the
        end.
        """
        pages = []
        before: str | None = None
        while True:
            page = self.page(testcase, room, n, before)
            pages.append(texts(page))
            if page.before is None:
                return pages
            before = page.before
            testcase.assertLess(len(pages), 100, "the cursors go round")


class MemoryPagesTests(Paging, unittest.SynchronousTestCase):
    """
    Paging when nothing is stored: the tail is all there is.
    """

    def setUp(self) -> None:
        self.clock = Ticker()
        self.history = History(keep=10, clock=self.clock)

    def test_pagesNewestFirst(self) -> None:
        self.say("lobby", "1", "2", "3")
        self.say("lobby", "4", "5", "6", "7")
        self.assertEqual(
            self.walk(self, "lobby", 3),
            [["5", "6", "7"], ["2", "3", "4"], ["1"]],
        )

    def test_times(self) -> None:
        self.say("lobby", "1")
        self.say("lobby", "2")
        page = self.page(self, "lobby", 5, None)
        self.assertEqual([e.time for e in page.lines], [T0 + 1, T0 + 2])
        self.assertIsNone(page.before)

    def test_exactFit(self) -> None:
        """
        A page that takes the last line there is says so.
        """
        self.say("lobby", "1", "2", "3", "4")
        self.assertEqual(self.walk(self, "lobby", 2), [["3", "4"], ["1", "2"]])

    def test_cursorHoldsStillWhileLinesAreSaid(self) -> None:
        self.say("lobby", "1", "2", "3", "4")
        first = self.page(self, "lobby", 2, None)
        self.say("lobby", "5", "6")
        assert first.before is not None
        self.assertEqual(texts(self.page(self, "lobby", 2, first.before)), ["1", "2"])

    def test_onlyWhatTheTailKeeps(self) -> None:
        self.say("lobby", *[str(i) for i in range(15)])
        self.assertEqual(
            self.walk(self, "lobby", 4),
            [["11", "12", "13", "14"], ["7", "8", "9", "10"], ["5", "6"]],
        )

    def test_emptyRoom(self) -> None:
        page = self.page(self, "lobby", 5, None)
        self.assertEqual(page, Page([], None))

    def test_replayCursor(self) -> None:
        """
        L{History.before} gives the cursor of the lines older than a
        replay's, None when the replay holds them all.
        """
        self.say("lobby", "1", "2", "3")
        self.assertIsNone(self.history.before("lobby", 3))
        self.assertIsNone(self.history.before("nowhere", 3))
        before = self.history.before("lobby", 2)
        self.assertEqual(texts(self.page(self, "lobby", 5, before)), ["1"])

    def test_garbage(self) -> None:
        self.say("lobby", "1", "2", "3")
        for cursor in [
            "",
            "x",
            "m",
            "d",
            "d1",
            "d1.x",
            "m1.2",
            "m..1",
            "1.2.3",
            "d-1.0",
            " d1.0",
            "d1.0 ",
            "m" + "1" * 100,
        ]:
            failure = self.failureResultOf(
                Deferred.fromCoroutine(self.history.page("lobby", 2, cursor)),
                BadCursor,
            )
            self.assertEqual(failure.value.code, "bad_cursor")

    def test_otherRoomsCursor(self) -> None:
        self.say("lobby", "1", "2", "3")
        self.say("Python", "a", "b", "c")
        before = self.page(self, "python", 1, None).before
        assert before is not None
        self.failureResultOf(
            Deferred.fromCoroutine(self.history.page("lobby", 2, before)), BadCursor
        )

    def test_anotherRunsCursor(self) -> None:
        """
        A cursor from before a restart is refused, not misread.
        """
        self.say("lobby", "1", "2", "3")
        before = self.page(self, "lobby", 1, None).before
        assert before is not None
        self.history = History(keep=10, clock=self.clock)
        self.say("lobby", "1", "2", "3")
        self.failureResultOf(
            Deferred.fromCoroutine(self.history.page("lobby", 2, before)), BadCursor
        )

    def test_cursorBeyondTheEnd(self) -> None:
        self.say("lobby", "1", "2", "3")
        before = self.page(self, "lobby", 1, None).before
        assert before is not None
        beyond = before.rpartition(".")[0] + ".4"
        self.failureResultOf(
            Deferred.fromCoroutine(self.history.page("lobby", 2, beyond)), BadCursor
        )

    def test_storedCursorWithoutStore(self) -> None:
        self.say("lobby", "1")
        self.failureResultOf(
            Deferred.fromCoroutine(self.history.page("lobby", 2, "d1.0")), BadCursor
        )


class StorePagesTests(unittest.SynchronousTestCase):
    """
    L{Store.page} on its own, on chunks written as the writer writes them.
    """

    def setUp(self) -> None:
        self.store, _ = new_store(self)

    def write(self, room: str, *chunks: list[str]) -> None:
        for i, chunk in enumerate(chunks):
            self.store.insert(
                {room.lower(): batch(T0 + i, room, [said("bob", t) for t in chunk])}
            )

    def page(
        self, room: str, n: int, place: Place | None = None, skip: int = 0
    ) -> tuple[list[str], Place | None]:
        found = self.store.page(room, n, place, skip)
        assert found is not None
        return [r.decode()[5:-1] for _, r in found[0]], found[1]

    def test_acrossChunks(self) -> None:
        self.write("lobby", ["1", "2", "3"], ["4", "5"], ["6"])
        lines, older = self.page("lobby", 4)
        self.assertEqual(lines, ["3", "4", "5", "6"])
        assert older is not None
        self.assertEqual(older[1], 2)
        self.assertEqual(self.page("lobby", 4, older), (["1", "2"], None))

    def test_chunkBoundary(self) -> None:
        """
        A page that ends where a chunk begins points at the chunk; the
        first chunk's first line has nothing before it.
        """
        self.write("lobby", ["1", "2"], ["3", "4"])
        lines, older = self.page("lobby", 2)
        self.assertEqual(lines, ["3", "4"])
        assert older is not None
        self.assertEqual(older[1], 0)
        self.assertEqual(self.page("lobby", 2, older), (["1", "2"], None))

    def test_skip(self) -> None:
        self.write("lobby", ["1", "2", "3"], ["4", "5"], ["6"])
        self.assertEqual(self.page("lobby", 2, skip=3)[0], ["2", "3"])
        self.assertEqual(self.page("lobby", 9, skip=6), ([], None))
        self.assertEqual(self.page("lobby", 9, skip=60), ([], None))

    def test_times(self) -> None:
        self.write("lobby", ["1"], ["2"])
        found = self.store.page("lobby", 5, None, 0)
        assert found is not None
        self.assertEqual([when for when, _ in found[0]], [T0, T0 + 1])

    def test_roomsApart(self) -> None:
        self.write("lobby", ["1", "2"])
        self.write("Python", ["a", "b"])
        self.write("lobby", ["3"])
        self.assertEqual(self.page("lobby", 9), (["1", "2", "3"], None))
        self.assertEqual(self.page("python", 9), (["a", "b"], None))

    def test_otherRoomsChunk(self) -> None:
        self.write("lobby", ["1", "2"])
        self.write("Python", ["a", "b"])
        python = self.store.page("python", 1, None, 0)
        assert python is not None and python[1] is not None
        self.assertIsNone(self.store.page("lobby", 5, python[1], 0))

    def test_prunedChunk(self) -> None:
        """
        A place in a chunk retention removed has nothing left before it.
        """
        self.write("lobby", ["1", "2"], ["3"])
        self.assertEqual(self.page("lobby", 5, (999, 3)), (["1", "2", "3"], None))
        self.store.prune(1, 0)
        self.assertEqual(self.page("lobby", 5, (1, 1)), ([], None))

    def test_empty(self) -> None:
        self.assertEqual(self.page("lobby", 5), ([], None))


class BoundaryTests(Paging, unittest.SynchronousTestCase):
    """
    Paging from the tail into the database: every line once, in order,
    whatever has been written yet.
    """

    def setUp(self) -> None:
        self.clock = Ticker()
        self.store, _ = new_store(self)
        self.history = self.restart(keep=5)

    def restart(self, keep: int) -> History:
        history = History(keep=keep, clock=self.clock, persist=True)
        history.load(self.store.tails(keep))
        history.archive = self.archive
        return history

    def archive(
        self, room_key: str, n: int, place: Place | None, skip: int
    ) -> Deferred[Stored | None]:
        return succeed(self.store.page(room_key, n, place, skip))

    def write(self) -> None:
        self.store.insert(self.history.take())

    def lines(self, pages: list[list[str]]) -> list[str]:
        return [line for page in reversed(pages) for line in page]

    def test_allWritten(self) -> None:
        for i in range(4):
            self.say("lobby", *[f"{i}.{j}" for j in range(3)])
            self.write()
        expected = [f"{i}.{j}" for i in range(4) for j in range(3)]
        for n in (1, 2, 3, 4, 5, 7, 12, 20):
            pages = self.walk(self, "lobby", n)
            self.assertEqual(self.lines(pages), expected, n)
            self.assertTrue(all(0 < len(page) <= n for page in pages[:-1]), n)

    def test_someUnwritten(self) -> None:
        """
        Lines the writer has not taken yet are in the tail only; the
        database is asked past what it has of the tail.
        """
        for i in range(4):
            self.say("lobby", *[f"{i}.{j}" for j in range(3)])
            if i < 2:
                self.write()
        expected = [f"{i}.{j}" for i in range(4) for j in range(3)]
        for n in (1, 2, 4, 5, 6, 9):
            self.assertEqual(self.lines(self.walk(self, "lobby", n)), expected, n)

    def test_nothingWrittenYet(self) -> None:
        """
        Lines the tail no longer holds and the writer has not taken are
        read from the unwritten buffer.
        """
        self.say("lobby", *[f"0.{j}" for j in range(6)])
        self.say("lobby", *[f"1.{j}" for j in range(6)])
        expected = [f"{i}.{j}" for i in range(2) for j in range(6)]
        for n in (1, 4, 5, 7, 20):
            self.assertEqual(self.lines(self.walk(self, "lobby", n)), expected, n)
        self.write()
        for n in (1, 4, 5, 7, 20):
            self.assertEqual(self.lines(self.walk(self, "lobby", n)), expected, n)

    def test_cursorFromBeforeTheTailMoved(self) -> None:
        """
        A tail cursor whose lines the tail has since let go of still finds
        them, in the database.
        """
        self.say("lobby", "1", "2", "3", "4")
        self.write()
        before = self.page(self, "lobby", 2, None).before
        assert before is not None
        self.say("lobby", *[f"x{i}" for i in range(8)])
        self.write()
        self.assertEqual(texts(self.page(self, "lobby", 5, before)), ["1", "2"])

    def test_afterRestart(self) -> None:
        """
        A restarted server's tail is read back from the file; paging goes
        on into the chunks it did not read.
        """
        for i in range(5):
            self.say("lobby", *[f"{i}.{j}" for j in range(3)])
            self.write()
        self.say("Python", "elsewhere")
        self.write()
        self.history = self.restart(keep=4)
        self.say("lobby", "new")
        expected = [f"{i}.{j}" for i in range(5) for j in range(3)] + ["new"]
        for n in (1, 3, 4, 6, 50):
            self.assertEqual(self.lines(self.walk(self, "lobby", n)), expected, n)
        self.assertEqual(self.lines(self.walk(self, "python", 2)), ["elsewhere"])

    def test_storedCursorSurvivesRestart(self) -> None:
        for i in range(5):
            self.say("lobby", *[f"{i}.{j}" for j in range(3)])
            self.write()
        first = self.page(self, "lobby", 6, None)
        second = self.page(self, "lobby", 2, first.before)
        assert second.before is not None and second.before.startswith("d")
        self.history = self.restart(keep=5)
        self.assertEqual(
            texts(self.page(self, "lobby", 50, second.before)),
            [f"{i}.{j}" for i in range(2) for j in range(3)] + ["2.0"],
        )

    def test_emptyRoom(self) -> None:
        self.assertEqual(self.page(self, "lobby", 5, None), Page([], None))

    def test_replayCursorWithStore(self) -> None:
        """
        With a database, a replay of the whole tail still hands out a
        cursor: older lines may be stored.
        """
        self.say("lobby", "1", "2")
        self.write()
        self.history = self.restart(keep=1)
        before = self.history.before("lobby", 1)
        assert before is not None
        page = self.page(self, "lobby", 5, before)
        self.assertEqual((texts(page), page.before), (["1"], None))

    def test_otherRoomsStoredCursor(self) -> None:
        self.say("lobby", "1", "2")
        self.say("Python", "a", "b", "c")
        self.write()
        self.history = self.restart(keep=1)
        python = self.page(self, "python", 1, None)
        stored = self.page(self, "python", 1, python.before)
        assert stored.before is not None and stored.before.startswith("d")
        self.failureResultOf(
            Deferred.fromCoroutine(self.history.page("lobby", 2, stored.before)),
            BadCursor,
        )
        self.assertEqual(texts(self.page(self, "python", 5, stored.before)), ["a"])
