"""
Room history in memory: the tail of every room, for replay, and the queue of
lines not yet written to the database.

History sits on the broadcast path, which carries hundreds of thousands of
lines a second, so it is recorded the way lines are delivered: per room and
per reactor turn, not per line. A room's messages and actions are kept as
the very wire lines that were broadcast (C{[room] <nick> text}); when the
registry flushes the room it hands the turn's lines over in one call, with
one timestamp. Parsing a wire line back into sender and text happens only
when it is replayed; the database stores the lines as they are.

Replay on entering a room and C{/history} read only this tail, so they never
wait for the disk and a live line can never overtake them. No I/O here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import NamedTuple

# Most lines /history may ask for, and so how many of each room are kept in
# memory.
HISTORY_MAX = 500
# Lines replayed to whoever enters a room, unless the operator says.
DEFAULT_REPLAY = 20

MESSAGE = "message"
ACTION = "action"


class Unwritten:
    """
    A room's lines not yet written: their bytes, joined as they come, so
    that the writer has one buffer a room to store rather than a list of
    lines to walk, and spends the GIL the reactor thread needs only once a
    room per flush.
    """

    __slots__ = ("count", "data", "room", "time")

    def __init__(self, time: float, room: str) -> None:
        self.time = time
        self.room = room
        self.data = bytearray()
        self.count = 0


class Entry(NamedTuple):
    """
    One stored line, parsed.
    """

    time: float
    sender: str
    kind: str
    text: str


def parse(when: float, line: bytes) -> Entry:
    """
    Read a broadcast message or action line back. Room names and nicknames
    hold no C{]}, C{>} or space, so the first of each ends the name.
    """
    body = line.decode("utf-8").removesuffix("\r\n")
    body = body[body.index("] ") + 2 :]
    if body.startswith("<"):
        sender, _, text = body[1:].partition("> ")
        return Entry(when, sender, MESSAGE, text)
    sender, _, text = body[2:].partition(" ")
    return Entry(when, sender, ACTION, text)


class Tail:
    """
    A room's last lines and the times they were said, side by side: two
    C{extend}s a turn, and no tuple a line.
    """

    __slots__ = ("lines", "times")

    def __init__(self, keep: int) -> None:
        self.lines: deque[bytes] = deque(maxlen=keep)
        self.times: deque[float] = deque(maxlen=keep)


class History:
    """
    The last L{keep} lines of every room, and the batches not yet persisted.

    @ivar unwritten: lines recorded since the writer last took them, by room
        key; None when nothing persists them.
    @ivar wake: called when lines are recorded and L{unwritten} was empty,
        so that the writer can schedule a flush without polling.
    """

    def __init__(
        self,
        keep: int = HISTORY_MAX,
        clock: Callable[[], float] = time.time,
        persist: bool = False,
    ) -> None:
        self.keep = keep
        self.clock = clock
        self.tails: dict[str, Tail] = {}
        self.unwritten: dict[str, Unwritten] | None = {} if persist else None
        self.wake: Callable[[], None] | None = None

    def record(self, room_key: str, room: str, lines: list[bytes]) -> None:
        """
        Keep one turn's message and action lines of a room.
        """
        now = self.clock()
        tail = self.tails.get(room_key)
        if tail is None:
            tail = self.tails[room_key] = Tail(self.keep)
        tail.lines.extend(lines)
        tail.times.extend(repeat(now, len(lines)))
        unwritten = self.unwritten
        if unwritten is not None:
            pending = unwritten.get(room_key)
            if pending is None:
                if not unwritten and self.wake is not None:
                    self.wake()
                pending = unwritten[room_key] = Unwritten(now, room)
            pending.data += b"".join(lines)
            pending.count += len(lines)

    def take(self) -> dict[str, Unwritten]:
        """
        Hand the writer every line recorded since it last asked.
        """
        taken = self.unwritten
        if not taken:
            return {}
        self.unwritten = {}
        return taken

    def give_back(self, taken: dict[str, Unwritten]) -> None:
        """
        Put lines whose write failed back in front of those recorded since,
        to be written again in order.
        """
        unwritten = self.unwritten
        if unwritten is None:
            return
        for room_key, older in taken.items():
            newer = unwritten.get(room_key)
            # Always a new buffer: the failed write (or a log observer that
            # keeps its traceback) may still hold views of the old one,
            # which could then never grow.
            if newer is not None:
                older.data = older.data + newer.data
                older.count += newer.count
            else:
                older.data = bytearray(older.data)
            unwritten[room_key] = older

    def unwritten_lines(self) -> int:
        return count_lines(self.unwritten or {})

    def load(self, lines: Iterable[tuple[float, str, bytes]]) -> None:
        """
        Put lines read back from the database (time, room key, wire line),
        each room oldest first, in memory.
        """
        for when, room_key, line in lines:
            tail = self.tails.get(room_key)
            if tail is None:
                tail = self.tails[room_key] = Tail(self.keep)
            tail.lines.append(line)
            tail.times.append(when)

    def recent(self, room_key: str, n: int) -> list[Entry]:
        """
        The last C{n} lines of a room, oldest first.
        """
        tail = self.tails.get(room_key)
        if tail is None or n <= 0:
            return []
        start = max(0, len(tail.lines) - n)
        return [
            parse(when, line)
            for when, line in zip(
                list(tail.times)[start:], list(tail.lines)[start:], strict=True
            )
        ]


def count_lines(unwritten: dict[str, Unwritten]) -> int:
    """
    How many lines a set of rooms' unwritten buffers holds.
    """
    return sum(u.count for u in unwritten.values())


def stamp(when: float) -> str:
    """
    How a replayed line shows its time: UTC, to the second.
    """
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))
