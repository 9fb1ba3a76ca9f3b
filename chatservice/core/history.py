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

import time
from collections import deque
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Final, Literal, NamedTuple

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
    """

    __slots__ = ("records", "times")

    def __init__(self, keep: int) -> None:
        self.records: deque[bytes] = deque(maxlen=keep)
        self.times: deque[float] = deque(maxlen=keep)


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

    def record(self, room_key: str, room: str, records: list[bytes]) -> None:
        """
        Keep the records (L{encode_record}) of one turn's messages and
        actions in a room.
        """
        now = self.clock()
        tail = self.tails.get(room_key)
        if tail is None:
            tail = self.tails[room_key] = Tail(self.keep)
        tail.records.extend(records)
        tail.times.extend(repeat(now, len(records)))
        unwritten = self.unwritten
        if unwritten is not None:
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

    def set_topic(self, room_key: str, topic: Topic) -> None:
        """
        Keep C{topic} as the topic of a room, or clear it if its text is
        empty, and queue the change for the writer.
        """
        if topic.text:
            self.topics[room_key] = topic
        else:
            self.topics.pop(room_key, None)
        if self.unwritten is not None:
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
