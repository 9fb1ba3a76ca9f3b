"""
Delivery: events queued during a reactor turn, rendered once per kind of
front end, and written once per member.

An event in a room is appended to the room's pending list; when the front
end's scheduler runs L{Fanout.flush} (once a turn), each room's pending
events are rendered once for each renderer present among its members, and
the same C{bytes} object is queued for every member of that kind who caused
none of them. Each member then gets a single write for the turn. Per
recipient, the work is an append; per line, one render per kind of front
end, whatever the number of members.

Ordering rules that follow, and that the tests pin down:

  - A member receives output in the order it was queued for it, whether
    room events, private messages or replies.
  - Membership changes flush the room first (L{Fanout.flush_room}), so a
    joiner never sees lines said before it joined and a leaver sees every
    line said before it left.
  - A private message flushes the sender's rooms first, so the addressee
    never sees it before a room line the sender said earlier.
  - The member who caused an event is not sent it, unless its renderer
    lists the event's type in C{echoed} (IRC's C{echo-message}): that is
    decided once per renderer, and costs the other members nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from twisted.logger import Logger

from chatservice.core.events import Event
from chatservice.core.history import History
from chatservice.core.rooms import Member, Room
from chatservice.core.stats import Stats

Scheduler = Callable[[Callable[[], None]], object]

log = Logger()

# The events a renderer without an C{echoed} attribute shows a member of
# its own doing: none (see L{chatservice.core.session.Renderer}).
_NOTHING: frozenset[type[Event]] = frozenset()


class Relay(Protocol):
    """
    Where a cluster node's fan-out sends what other processes must see.
    """

    def room(
        self,
        room: Room,
        pending: list[tuple[Member | None, Event]],
        records: list[bytes],
    ) -> None:
        """
        A room's events of this turn, in order, to be shared by all, and
        the history's records of the lines said among them.
        """

    def tell(self, member: Member, event: Event) -> None:
        """C{event} for C{member}, a member of another process."""

    def flush(self) -> None:
        """The turn is over: send what was handed over during it."""

    def holding(self) -> bool:
        """
        Whether this turn's output for members here waits, to go with what
        is about to come back from the other processes. The relay asks
        for a flush when it stops holding.
        """


def _here(sender: Member | None, members: dict[Member, None]) -> bool:
    """Whether C{sender} is a member of a room, on this process."""
    return sender is not None and not sender.remote and sender in members


def immediately(flush: Callable[[], None]) -> None:
    """A scheduler that flushes at once: for tests and tools."""
    flush()


class Fanout:
    """
    The per-turn queues of events and output.

    @param schedule: called with L{flush} whenever output is waiting, at
        most once until that flush has run. A reactor front end passes
        C{lambda f: reactor.callLater(0, f)} so that everything queued in
        one reactor turn goes out together.
    @param history: where rooms' records are kept when they are flushed.
    @param stats: where deliveries and fan-out times are counted.
    @param timer: the clock fan-out is timed with.
    """

    def __init__(
        self,
        schedule: Scheduler = immediately,
        history: History | None = None,
        stats: Stats | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._schedule = schedule
        self.history = history
        self.stats = Stats() if stats is None else stats
        self._timer = timer
        self._dirty_rooms: list[Room] = []
        self._dirty_members: list[Member] = []
        self._flush_scheduled = False
        # Room events handed to members since the last flush.
        self._room_lines = 0
        self.relay: Relay | None = None
        self.applying = False
        # With a relay, how long the last delivery to members took (their
        # writes), by the timer: a relay that holds output back paces it
        # by this.
        self.last_delivery = 0.0

    def post(self, room: Room, sender: Member | None, event: Event) -> None:
        """
        Queue C{event} for every member of C{room} except C{sender}.
        """
        if self.applying:
            self.share(room, [(sender, event)])
            return
        pending = room.pending
        pending.append((sender, event))
        if len(pending) == 1:
            self.dirty(room)

    def dirty(self, room: Room) -> None:
        """
        C{room} has its first pending events of the turn: flush it.
        """
        self._dirty_rooms.append(room)
        self._request_flush()

    def tell(self, member: Member, event: Event) -> None:
        """
        Queue C{event} for C{member} alone, rendered for it now.
        """
        if member.remote:
            if self.relay is not None and not self.applying:
                self.relay.tell(member, event)
            return
        data = member.renderer.render_to(member.nick, event)
        # A delivery is a line queued for a recipient, and one event may be
        # several (a replay, a listing).
        self.stats.deliveries += data.count(b"\n") or 1
        self.queue(member, data)

    def tell_all(self, members: Iterable[Member], event: Event) -> int:
        """
        Queue C{event} for each of C{members}, rendered once per renderer
        among them (a server-wide notice, say), after what their rooms have
        pending. Returns how many it was queued for.
        """
        for room in self._dirty_rooms:
            self.flush_room(room)
        rendered: dict[object, bytes] = {}
        told = 0
        for member in members:
            if member.remote:
                self.tell(member, event)
                told += 1
                continue
            renderer = member.renderer
            data = rendered.get(renderer)
            if data is None:
                data = rendered[renderer] = renderer.render(event)
            self.queue(member, data)
            told += 1
        self.stats.deliveries += told
        return told

    def queue(self, member: Member, data: bytes) -> None:
        """
        Queue bytes already rendered for C{member}.
        """
        if not member.connected or member.remote:
            return
        outbox = member.outbox
        outbox.append(data)
        if len(outbox) == 1:
            self._dirty_members.append(member)
            self._request_flush()

    def request_flush(self) -> None:
        """Have L{flush} run at the end of this turn."""
        self._request_flush()

    def _request_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._schedule(self.flush)

    def flush_room(self, room: Room) -> None:
        """
        Turn the room's pending events into queued output for its members:
        rendered once per renderer, and shared by every member of that kind
        who caused none of them.
        """
        pending = room.pending
        if not pending:
            return
        room.pending = []
        records = room.to_record
        if self.relay is not None:
            # The history keeps them as they come back through the log.
            room.to_record = []
            self.relay.room(room, pending, records)
            return
        if records:
            room.to_record = []
            assert self.history is not None
            self.history.record(room.folded, room.name, records)
        self.share(room, pending)

    def share(self, room: Room, pending: list[tuple[Member | None, Event]]) -> None:
        """
        Queue C{pending}, a room's events in order, for the room's members
        on this process, rendered once per renderer.
        """
        members = room.members
        here = len(members)
        if self.relay is not None:
            # Members of other processes are theirs to count.
            here = sum(map(len, room.by_renderer.values()))
        if here:
            self._room_lines += len(pending)
            if len(pending) == 1:
                sender = pending[0][0]
                self.stats.deliveries += here - _here(sender, members)
                self._share_one(room, sender, pending[0][1])
            else:
                self.stats.deliveries += len(pending) * here - sum(
                    [_here(sender, members) for sender, _ in pending]
                )
                self._share_many(room, pending)
            if self._dirty_members:
                self._request_flush()

    def _share_one(self, room: Room, sender: Member | None, event: Event) -> None:
        # The common case, a single event this turn, without the joins.
        dirty = self._dirty_members
        kind = type(event)
        for renderer, members in room.by_renderer.items():
            data = renderer.render(event)
            for member in members:
                if member is sender and kind not in getattr(
                    renderer, "echoed", _NOTHING
                ):
                    continue
                outbox = member.outbox
                if not outbox:
                    dirty.append(member)
                outbox.append(data)

    def _share_many(
        self, room: Room, pending: list[tuple[Member | None, Event]]
    ) -> None:
        dirty = self._dirty_members
        senders = {sender for sender, _ in pending}
        for renderer, members in room.by_renderer.items():
            render = renderer.render
            pieces = [render(event) for _, event in pending]
            data = b"".join(pieces)
            echoed = getattr(renderer, "echoed", _NOTHING)
            for member in members:
                if member in senders:
                    out = b"".join(
                        [
                            piece
                            for (sender, event), piece in zip(
                                pending, pieces, strict=True
                            )
                            if sender is not member or type(event) in echoed
                        ]
                    )
                    if not out:
                        continue
                else:
                    out = data
                outbox = member.outbox
                if not outbox:
                    dirty.append(member)
                outbox.append(out)

    def flush_rooms_of(self, member: Member) -> None:
        """
        Queue the events pending in C{member}'s rooms, for all their
        members, ahead of whatever is queued next.
        """
        for room in member.rooms.values():
            self.flush_room(room)

    def flush(self) -> None:
        """
        Deliver everything queued: one write per member with output.

        The time this takes is recorded once for each room event delivered:
        it is how long fanning out that event took, from the start of the
        turn's delivery to the last recipient's write.
        """
        started = self._timer()
        rooms, self._dirty_rooms = self._dirty_rooms, []
        for room in rooms:
            self.flush_room(room)
        if self.relay is not None:
            self.relay.flush()
            if self._dirty_members and self.relay.holding():
                self._flush_scheduled = False
                return
        members, self._dirty_members = self._dirty_members, []
        # A relay paces output by how long delivery takes (the timer is
        # read once more for it); one process needs only the whole flush.
        delivering = started if self.relay is None else self._timer()
        for member in members:
            try:
                self.deliver(member)
            except Exception:
                # A session that fails must not cost everyone after it
                # their output, nor stop every flush to come.
                log.failure("Delivering to {member!r} failed", member=member)
        ended = self._timer()
        if members:
            self.last_delivery = ended - delivering
        if self._room_lines:
            self.stats.fanout.observe(ended - started, self._room_lines)
            self._room_lines = 0
        self._flush_scheduled = False
        if self._dirty_rooms or self._dirty_members:
            # Delivery made more output (a recipient disconnected, say).
            self._request_flush()

    def deliver(self, member: Member) -> None:
        """
        Write what is queued for C{member} now, in one piece.
        """
        outbox = member.outbox
        if not outbox or not member.connected:
            return
        data = outbox[0] if len(outbox) == 1 else b"".join(outbox)
        outbox.clear()
        member.session.deliver(data)
