"""
Room history in memory: the tail of every room, for replay, and the queue of
records not yet written to the database.

History sits on the broadcast path, which carries hundreds of thousands of
lines a second, so it is recorded the way lines are delivered: per room and
per reactor turn, not per line. Each message or action is encoded once, as
it is said, into a record that no front end's rendering is part of (see
L{encode_record}); when the registry flushes the room it hands the turn's
records over in one call, with one timestamp. Records are decoded only when
they are replayed; the database stores them as they are.

Replay on entering a room and C{/history} read only this tail, so they never
wait for the disk and a live line can never overtake them. No I/O here.

Older lines are read a page at a time (L{History.page}), each page handing
out a cursor to the next older one. A cursor is a short opaque string of
one of two kinds:

 - C{m<run>.<room>.<position>}: lines before a position in the tail.
   Positions count a room's lines since the server started (L{Tail.end}),
   so they hold still while lines are said; C{<run>} names this run of the
   server and C{<room>} is a checksum of the room's key, so that a cursor
   from before a restart or of another room is refused, not misread.
 - C{d<chunk>.<index>}: lines before line C{index} of the stored chunk
   (a row of the C{history} table) C{chunk}. These outlive restarts.

Lines older than the tail come from the database through L{History.archive},
which runs the query off the reactor thread. The tail ends where the
database's lines, plus those not yet written, end; so the database is asked
to skip as many of its newest lines as the tail holds of the written ones,
and the first page from it hands out a C{d} cursor.

Each room's topic is kept here too, apart from its lines: the latest one
only, as an L{events.Topic}, by room key. It outlives the room (rooms exist
while they have members; a topic lasts as long as the history does) and, on
a server that stores history, rides to the database in the room's
L{Unwritten} batch, written in the same transaction as its lines. It is not
a record of the tail: a topic set before the last L{HISTORY_MAX} lines, or
before what retention prunes, must still be the room's topic after a
restart.
"""

from __future__ import annotations

import re
import secrets
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from itertools import islice, repeat
from typing import Final, Literal, NamedTuple

from chatservice.core.errors import BadCursor
from chatservice.core.events import Topic

# Most lines /history may ask for, and so how many of each room are kept in
# memory.
HISTORY_MAX = 500
# Lines replayed to whoever enters a room, unless the operator says.
DEFAULT_REPLAY = 20

Kind = Literal["message", "action"]
"""What a recorded line is. Add kinds here, with a code below."""
MESSAGE: Final = "message"
ACTION: Final = "action"

# The letter that starts a record of each kind. A new kind takes a letter
# never used before (C{t} for a topic change, say), and a schema migration
# that teaches the database's C{messages} view its name; a letter is never
# reused, since stored records keep theirs.
CODES: Final[dict[Kind, str]] = {MESSAGE: "m", ACTION: "a"}
KINDS: Final[dict[str, Kind]] = {code: kind for kind, code in CODES.items()}
# Each kind's record as a format of (sender, text), so that the broadcast
# path can bind one (C{FORMATS[MESSAGE].format}) and encode a record with
# no Python call.
FORMATS: Final[dict[Kind, str]] = {
    kind: code + "{} {}\n" for kind, code in CODES.items()
}


class Unwritten:
    """
    A room's records not yet written: their bytes, joined as they come, so
    that the writer has one buffer a room to store rather than a list of
    records to walk, and spends the GIL the reactor thread needs only once a
    room per flush.

    @ivar topic: the room's topic, if it was set (or cleared: an empty
        text) since the last write; None if it was not.
    """

    __slots__ = ("count", "data", "room", "time", "topic")

    def __init__(self, time: float, room: str) -> None:
        self.time = time
        self.room = room
        self.data = bytearray()
        self.count = 0
        self.topic: Topic | None = None


class Entry(NamedTuple):
    """
    One recorded line, decoded.
    """

    time: float
    sender: str
    kind: Kind
    text: str


def encode_record(kind: Kind, sender: str, text: str) -> bytes:
    """
    The record of one line said in a room: its kind's letter, the sender,
    one space, the text and a newline, in UTF-8 (C{"malice hi\\n"}). The
    room and the time are the batch's, not the record's.

    Nicknames hold no space, and text holds no control character (the
    sanitizer removes them and turns tabs into spaces), so the first space
    ends the sender and the newline ends the record, with nothing to
    escape; and since no byte of a multi-byte UTF-8 character is a newline,
    records are split on bytes, without decoding. Each front end renders
    the L{Entry} a record decodes to in its own way, and the C{messages}
    view splits a record with one C{instr}.

    This is on the broadcast path, once per line said (never per
    recipient), so it is one f-string and one C{encode}: a structured
    encoding (JSON, say) would cost several times as much per line, for
    fields this one already keeps apart.
    """
    return FORMATS[kind].format(sender, text).encode()


def decode_record(when: float, record: bytes) -> Entry:
    """
    Read back a record made by L{encode_record}, said at C{when}.
    """
    body = record.decode("utf-8").removesuffix("\n")
    sender, _, text = body[1:].partition(" ")
    return Entry(when, sender, KINDS[body[0]], text)


class Tail:
    """
    A room's last records and the times they were said, side by side: two
    C{extend}s a turn, and no tuple a line.

    @ivar end: how many lines the room has had since the server started
        (those read back from the database included): the position of its
        next line. The tail holds positions C{end - len(records)} to
        C{end - 1}.
    """

    __slots__ = ("end", "records", "times")

    def __init__(self, keep: int) -> None:
        self.records: deque[bytes] = deque(maxlen=keep)
        self.times: deque[float] = deque(maxlen=keep)
        self.end = 0


Place = tuple[int, int]
"""
A place in the database: lines before line C{index} of chunk C{chunk}, as
C{(chunk, index)}.
"""

Stored = tuple[list[tuple[float, bytes]], "Place | None"]
"""
A page read from the database: (time, record) oldest first, and the place
of the next older page, None if there is none.
"""

Archive = Callable[[str, int, "Place | None", int], Awaitable["Stored | None"]]
"""
Read up to C{n} lines of room C{room_key} from the database, off the
reactor thread: C{archive(room_key, n, place, skip)} gives the lines
before C{place}, or, without one, the lines before the C{skip} newest
stored ones; None if C{place} is a chunk of another room.
"""


@dataclass(frozen=True, slots=True)
class Page:
    """
    Lines of a room, oldest first, and the cursor of the page before them:
    None when they are the first the server has.
    """

    lines: list[Entry]
    before: str | None


_MEMORY = re.compile(r"m([0-9a-f]{1,16})\.([0-9a-f]{1,8})\.([0-9]{1,12})")
_STORED = re.compile(r"d([0-9]{1,18})\.([0-9]{1,9})")


def _room_tag(room_key: str) -> str:
    return format(zlib.crc32(room_key.encode("utf-8", "replace")), "x")


class History:
    """
    The last L{keep} lines of every room, and the batches not yet persisted.

    @ivar unwritten: records made since the writer last took them, by room
        key; None when nothing persists them.
    @ivar wake: called when lines are recorded and L{unwritten} was empty,
        so that the writer can schedule a flush without polling.
    @ivar topics: every room's topic, by room key.
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
        self.topics: dict[str, Topic] = {}
        self.archive: Archive | None = None
        self.run = secrets.token_hex(4)

    def record(
        self, room_key: str, room: str, records: list[bytes], store: bool = True
    ) -> None:
        """
        Keep the records (L{encode_record}) of one turn's messages and
        actions in a room; and, unless not to C{store} them (another
        process of the cluster writes its own), queue them for the writer.
        """
        now = self.clock()
        tail = self.tails.get(room_key)
        if tail is None:
            tail = self.tails[room_key] = Tail(self.keep)
        tail.records.extend(records)
        tail.times.extend(repeat(now, len(records)))
        tail.end += len(records)
        unwritten = self.unwritten
        if unwritten is not None and store:
            pending = self._unwritten(unwritten, room_key, room, now)
            pending.data += b"".join(records)
            pending.count += len(records)

    def _unwritten(
        self, unwritten: dict[str, Unwritten], room_key: str, room: str, now: float
    ) -> Unwritten:
        pending = unwritten.get(room_key)
        if pending is None:
            if not unwritten and self.wake is not None:
                self.wake()
            pending = unwritten[room_key] = Unwritten(now, room)
        return pending

    def set_topic(self, room_key: str, topic: Topic, store: bool = True) -> None:
        """
        Keep C{topic} as the topic of a room, or clear it if its text is
        empty, and queue the change for the writer unless not to C{store}
        it.
        """
        if topic.text:
            self.topics[room_key] = topic
        else:
            self.topics.pop(room_key, None)
        if self.unwritten is not None and store:
            self._unwritten(
                self.unwritten, room_key, topic.room, topic.time
            ).topic = topic

    def load_topics(self, topics: Iterable[tuple[str, Topic]]) -> None:
        """
        Put topics read back from the database (room key, topic) in memory.
        """
        self.topics.update(topics)

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
                if newer.topic is not None:
                    older.topic = newer.topic
            else:
                older.data = bytearray(older.data)
            unwritten[room_key] = older

    def unwritten_lines(self) -> int:
        return count_lines(self.unwritten or {})

    def load(self, records: Iterable[tuple[float, str, bytes]]) -> None:
        """
        Put records read back from the database (time, room key, record),
        each room oldest first, in memory.
        """
        for when, room_key, record in records:
            tail = self.tails.get(room_key)
            if tail is None:
                tail = self.tails[room_key] = Tail(self.keep)
            tail.records.append(record)
            tail.times.append(when)
            tail.end += 1

    def recent(self, room_key: str, n: int) -> list[Entry]:
        """
        The last C{n} lines of a room, oldest first.
        """
        tail = self.tails.get(room_key)
        if tail is None or n <= 0:
            return []
        start = max(0, len(tail.records) - n)
        return [
            decode_record(when, record)
            for when, record in zip(
                list(tail.times)[start:], list(tail.records)[start:], strict=True
            )
        ]

    def before(self, room_key: str, count: int) -> str | None:
        """
        The cursor of the lines older than the last C{count} of a room
        (those L{recent} gives), None if there are certainly none.
        """
        tail = self.tails.get(room_key)
        if tail is None:
            return None
        position = max(0, tail.end - count)
        # The tail's oldest line may not be the room's first stored one.
        if position > tail.end - len(tail.records) or self.archive is not None:
            return self._cursor(room_key, position)
        return None

    def _cursor(self, room_key: str, position: int) -> str:
        return f"m{self.run}.{_room_tag(room_key)}.{position}"

    async def page(self, room_key: str, n: int, before: str | None) -> Page:
        """
        Up to C{n} lines of a room older than the cursor C{before} (or the
        last C{n}, without one), and the cursor of the page before them.
        From the tail when it holds them, else (for what it lacks) from
        L{archive}. Raises L{BadCursor} for a cursor this room never had.

        Lines the writer has taken count as stored: the query runs on the
        database thread after their write. If that write fails, they are
        missing from pages asked for meanwhile, until it is retried.
        """
        tail = self.tails.get(room_key)
        end = 0 if tail is None else tail.end
        held = 0 if tail is None else len(tail.records)
        start = end - held
        position = end
        if before is not None:
            stored = _STORED.fullmatch(before)
            if stored is not None:
                place = (int(stored[1]), int(stored[2]))
                return await self._stored(room_key, n, place, 0, [], before)
            memory = _MEMORY.fullmatch(before)
            if (
                memory is None
                or memory[1] != self.run
                or memory[2] != _room_tag(room_key)
                or not 0 <= int(memory[3]) <= end
            ):
                raise BadCursor(before[:64])
            position = int(memory[3])
        first = max(start, position - n)
        lines: list[Entry] = []
        if tail is not None and position > first:
            lines = [
                decode_record(when, record)
                for when, record in zip(
                    islice(tail.times, first - start, position - start),
                    islice(tail.records, first - start, position - start),
                    strict=True,
                )
            ]
        if len(lines) == n or self.archive is None:
            if first > start or self.archive is not None:
                return Page(lines, self._cursor(room_key, first))
            return Page(lines, None)
        # The tail holds too few: the rest is older than its oldest line (or
        # than the cursor), and the database holds it after the lines from
        # there on that it has been given.
        oldest = min(position, start)
        need = n - len(lines)
        pending = (self.unwritten or {}).get(room_key)
        waiting = 0 if pending is None else pending.count
        if pending is not None and end - waiting < oldest:
            # More has been said since the last write than the tail keeps:
            # the lines between are only in the unwritten buffer, dated as
            # the database will date them.
            buffered = end - waiting
            since = max(buffered, oldest - need)
            records = bytes(pending.data).split(b"\n")
            lines = [
                decode_record(pending.time, record)
                for record in records[since - buffered : oldest - buffered]
            ] + lines
            need -= oldest - since
            oldest = since
            if need == 0:
                return Page(lines, self._cursor(room_key, oldest))
        skip = max(0, end - oldest - waiting)
        return await self._stored(room_key, need, None, skip, lines, None)

    async def _stored(
        self,
        room_key: str,
        n: int,
        place: Place | None,
        skip: int,
        newer: list[Entry],
        cursor: str | None,
    ) -> Page:
        if self.archive is None:
            if place is None:
                return Page(newer, None)
            # Database places mean nothing where nothing is stored.
            raise BadCursor(cursor or "")
        found = await self.archive(room_key, n, place, skip)
        if found is None:
            raise BadCursor(cursor or "")
        records, older = found
        lines = [decode_record(when, record) for when, record in records]
        return Page(lines + newer, None if older is None else f"d{older[0]}.{older[1]}")


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
