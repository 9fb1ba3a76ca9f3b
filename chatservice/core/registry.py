"""
The broadcast registry: who is connected, under which nickname, in which
rooms, and the delivery of lines to them.

The registry does no I/O. Each member is backed by an L{IRecipient} that the
front end supplies (the line protocol today; an IRC front end or a pub/sub
backplane later), and the registry hands it whole encoded lines. That keeps
every rule about names, rooms and ordering testable without a socket.

Delivery is coalesced per reactor turn. A line said in a room is appended to
the room's pending list; when the front end calls L{Registry.flush} (once a
turn, via the C{schedule} callable), each room's pending lines are joined
once and the same C{bytes} object is queued for every member who did not
send any of them. Each member then gets a single write for the turn. This
keeps per-recipient work to an append, which is what makes fan-out cheap.

Ordering rules that follow from this, and that the tests pin down:

  - A member receives lines in the order they were queued for it, whether
    room lines, private lines or replies.
  - Membership changes flush the room first, so a joiner never sees lines
    said before it joined and a leaver sees every line said before it left.
  - A private message flushes the sender's rooms first, so the addressee
    never sees a private line before a room line the sender said earlier.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterator, Sequence
from itertools import count

from twisted.logger import Logger
from zope.interface import Interface

from chatservice.core import names
from chatservice.core.history import (
    ACTION,
    DEFAULT_REPLAY,
    MESSAGE,
    History,
    encode_record,
    stamp,
)
from chatservice.core.stats import Stats
from chatservice.frontends.line import wire

DEFAULT_ROOM = "lobby"
GUEST = names.GUEST
WHO_LIMIT = 200

# Events, not I/O: whoever observes the log decides where they go.
log = Logger()


class ChatError(Exception):
    """
    A request the registry refuses. The message is written for the user and
    is sent back to them as an error line.
    """


class IRecipient(Interface):
    """
    The front end's side of a member: where its bytes go.
    """

    def deliver(data: bytes) -> None:
        """
        Send C{data}, one or more complete encoded lines, to the member.
        """

    def close() -> None:
        """
        End the member's connection once what was delivered has been sent.
        """


class Member:
    """
    One connected user.

    Members compare by identity: two connections are two members even if
    one later takes the other's old nickname.
    """

    __slots__ = (
        "__weakref__",
        "account",
        "connected",
        "current",
        "key",
        "nick",
        "outbox",
        "recipient",
        "rooms",
    )

    def __init__(self, nick: str, recipient: IRecipient) -> None:
        self.nick = nick
        self.key = names.fold(nick)
        self.recipient = recipient
        # Rooms the member is in, by key, in the order it joined them.
        self.rooms: dict[str, Room] = {}
        # Where plain lines go: the room joined (or selected) last.
        self.current: Room | None = None
        self.outbox: list[bytes] = []
        self.connected = True
        # The key of the registered nickname it has logged in as.
        self.account: str | None = None

    def __repr__(self) -> str:
        return f"<Member {self.nick!r}>"


class Room:
    """
    A named set of members. A room exists while it has members.
    """

    __slots__ = ("key", "members", "name", "pending", "said")

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = names.fold(name)
        # An insertion-ordered set: deterministic delivery order.
        self.members: dict[Member, None] = {}
        # Lines said this turn, with who said them (None: the server).
        self.pending: list[tuple[Member | None, bytes]] = []
        # Of those, the messages and actions, as history records.
        self.said: list[bytes] = []

    def __repr__(self) -> str:
        return f"<Room {self.name!r} ({len(self.members)} members)>"


def _immediately(flush: Callable[[], None]) -> None:
    flush()


class Registry:
    """
    Members and rooms, and the delivery of lines between them.

    @param schedule: called with L{flush} whenever lines are waiting, at most
        once until that flush has run. A reactor front end passes
        C{lambda f: reactor.callLater(0, f)} so that everything queued in
        one reactor turn goes out together; the default delivers at once.
    @param history: where room messages and actions are recorded, and
        replayed from when a member enters a room; None keeps none.
    @param replay: how many lines of history entering a room replays.
    @param stats: where deliveries and fan-out times are counted.
    @param timer: the clock fan-out is timed with.
    @ivar motd: the message of the day, lines of text every newcomer is
        told after the welcome.
    """

    def __init__(
        self,
        schedule: Callable[[Callable[[], None]], object] = _immediately,
        default_room: str = DEFAULT_ROOM,
        history: History | None = None,
        replay: int = DEFAULT_REPLAY,
        stats: Stats | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._schedule = schedule
        self.default_room = default_room
        self.history = history
        self.replay = replay
        self.members: dict[str, Member] = {}
        self.rooms: dict[str, Room] = {}
        self._dirty_rooms: list[Room] = []
        self._dirty_members: list[Member] = []
        self._flush_scheduled = False
        # Room lines handed to members since the last flush.
        self._room_lines = 0
        self._guest_numbers = count(1)
        # Keys of registered nicknames: only who is logged in as one may
        # use it. The accounts service keeps this up to date.
        self.registered: Container[str] = frozenset()
        self.stats = Stats() if stats is None else stats
        self._timer = timer
        self.motd: Sequence[str] = ()

    # Connection life cycle

    def connect(self, recipient: IRecipient) -> Member:
        """
        Add a member under a fresh guest nickname and put it in the default
        room.
        """
        nick = self._guest_nick()
        member = Member(nick, recipient)
        self.members[member.key] = member
        self.tell(member, wire.welcome(nick, self.default_room))
        if self.motd:
            self.tell(member, wire.motd_start())
            for line in self.motd:
                self.tell(member, wire.motd_line(line))
        self.join(member, self.default_room, announce_self=False)
        return member

    def _guest_nick(self) -> str:
        while True:
            nick = f"{GUEST}{next(self._guest_numbers)}"
            if nick not in self.members and nick not in self.registered:
                return nick

    @staticmethod
    def is_guest_nick(nick: str) -> bool:
        """
        Whether C{nick} has the shape of the names handed to newcomers.
        """
        return names.is_guest_nick(nick)

    def disconnect(self, member: Member, reason: str) -> None:
        """
        Remove C{member} everywhere and tell its rooms why. Lines still
        waiting for it are dropped: its connection is gone. Calling this
        again for the same member does nothing.
        """
        if not member.connected:
            return
        member.connected = False
        member.outbox.clear()
        del self.members[member.key]
        for room in list(member.rooms.values()):
            self._remove(member, room)
            self._post(room, None, wire.quit(room.name, member.nick, reason))
        member.current = None

    def quit(self, member: Member, message: str) -> None:
        """
        The member asked to leave: say goodbye, tell its rooms, and close its
        connection after everything queued for it has been delivered.
        """
        self.dismiss(member, wire.notice("Goodbye."), message or "quit")

    def dismiss(self, member: Member, last_line: str, reason: str) -> None:
        """
        End C{member}'s session: deliver what is queued for it and then
        C{last_line}, tell its rooms it quit for C{reason}, and ask its
        connection to close once that has been sent.
        """
        if not member.connected:
            return
        self._flush_rooms_of(member)
        self.tell(member, last_line)
        self._deliver(member)
        self.disconnect(member, reason)
        member.recipient.close()

    def close_all(self, last_line: str) -> None:
        """
        The server is stopping: everyone gets what is queued for them, then
        C{last_line}, and their connections are asked to close. Nobody is
        told of anybody else leaving, as everybody is; that also keeps this
        linear in the number of members.
        """
        self.flush()
        data = wire.encode(last_line)
        members = list(self.members.values())
        # Everyone is gone from the registry before anyone's connection is
        # touched: a recipient that fails while taking its last line finds
        # its member disconnected already, and everyone else still gets
        # theirs.
        for member in members:
            member.connected = False
            member.rooms.clear()
            member.current = None
        self.members.clear()
        self.rooms.clear()
        for member in members:
            outbox = member.outbox
            outbox.append(data)
            out = b"".join(outbox)
            outbox.clear()
            member.recipient.deliver(out)
            member.recipient.close()
        self.stats.deliveries += len(members)

    # Names

    def rename(self, member: Member, requested: str) -> None:
        """
        Give C{member} the nickname C{requested}, refusing names that are
        invalid or held by someone else (compared case-insensitively).
        """
        try:
            nick = names.nickname(requested)
        except names.InvalidName as e:
            raise ChatError(f"Invalid nickname: {e}.") from None
        key = names.fold(nick)
        holder = self.members.get(key)
        if holder is not None and holder is not member:
            raise ChatError(f"The nickname {nick} is taken.")
        if key in self.registered and member.account != key:
            raise ChatError(
                f"The nickname {nick} is registered; if it is yours, use "
                f"/login {nick} PASSWORD."
            )
        if nick == member.nick:
            self.tell(member, wire.notice(f"You are already {nick}."))
            return
        self._set_nick(member, nick)

    def _set_nick(self, member: Member, nick: str) -> None:
        key = names.fold(nick)
        old = member.nick
        log.info("{old} is now known as {nick}", old=old, nick=nick)
        del self.members[member.key]
        member.nick, member.key = nick, key
        self.members[key] = member
        self.tell(member, wire.notice(f"You are now known as {nick}."))
        for room in member.rooms.values():
            self._post(room, member, wire.renamed(room.name, old, nick))

    def log_in(self, member: Member, nick: str) -> None:
        """
        C{member} has proved it owns the registered nickname C{nick}: give
        it that name, renaming whoever else holds it (a guest who took it
        while it was free, or an older session of the owner's) to a guest
        name.
        """
        key = names.fold(nick)
        holder = self.members.get(key)
        if holder is not None and holder is not member:
            holder.account = None
            self.tell(
                holder,
                wire.notice(f"{nick} has logged in from elsewhere; you are renamed."),
            )
            self._set_nick(holder, self._guest_nick())
        member.account = key
        if member.nick != nick:
            self._set_nick(member, nick)

    def log_out(self, member: Member) -> None:
        """
        C{member} gives up its account, and so its registered name.
        """
        member.account = None
        self.tell(member, wire.notice("You are logged out."))
        if names.fold(member.nick) in self.registered:
            self._set_nick(member, self._guest_nick())

    def find(self, nick: str) -> Member:
        """
        The member called C{nick}, in any case.
        """
        member = self.members.get(names.fold(nick))
        if member is None:
            raise ChatError(f"No such nickname: {nick}.")
        return member

    # Rooms

    def join(self, member: Member, requested: str, announce_self: bool = True) -> Room:
        """
        Put C{member} in the room C{requested} (creating it) and make it the
        member's current room. Joining a room one is already in only makes
        it current.
        """
        try:
            name = names.room_name(requested)
        except names.InvalidName as e:
            raise ChatError(f"Invalid room name: {e}.") from None
        key = names.fold(name)
        room = member.rooms.get(key)
        if room is not None:
            member.current = room
            self.tell(member, wire.notice(f"Now talking in {room.name}."))
            return room
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = Room(name)
        # Lines said before the join are not the joiner's to see.
        self._flush_room(room)
        room.members[member] = None
        member.rooms[key] = room
        member.current = room
        log.info("{nick} joined {room}", nick=member.nick, room=room.name)
        if announce_self:
            self.tell(
                member,
                wire.notice(
                    f"Now talking in {room.name} ({_count_members(len(room.members))})."
                ),
            )
        self.replay_history(member, room, self.replay)
        self._post(room, member, wire.joined(room.name, member.nick))
        return room

    def replay_history(self, member: Member, room: Room, n: int) -> int:
        """
        Tell C{member} the last C{n} lines said in C{room}, marked as history.
        The history is in memory, so nothing said after this can come first.
        Returns how many lines were replayed.
        """
        if self.history is None:
            return 0
        # Lines said earlier this turn are history already.
        self._flush_room(room)
        entries = self.history.recent(room.key, n)
        if not entries:
            return 0
        self.tell(member, wire.history_start(room.name, len(entries)))
        for entry in entries:
            self.tell(
                member,
                wire.history_line(
                    room.name, stamp(entry.time), entry.kind, entry.sender, entry.text
                ),
            )
        self.tell(member, wire.history_end(room.name))
        return len(entries)

    def part(self, member: Member, requested: str | None = None) -> Room:
        """
        Take C{member} out of the room C{requested}, or out of its current
        room. If that was the current room, the room joined most recently
        among those left becomes current.
        """
        room = self.room_of(member, requested)
        self._remove(member, room)
        log.info("{nick} left {room}", nick=member.nick, room=room.name)
        self._post(room, None, wire.left(room.name, member.nick))
        if member.current is room:
            member.current = next(reversed(member.rooms.values()), None)
        if member.current is None:
            after = "you are in no room now; /join one to talk"
        else:
            after = f"now talking in {member.current.name}"
        self.tell(member, wire.notice(f"You left {room.name}; {after}."))
        return room

    def room_of(self, member: Member, requested: str | None) -> Room:
        """
        The room C{member} means: C{requested}, which it must be in, or else
        its current room.
        """
        if requested is None:
            if member.current is None:
                raise ChatError("You are not in any room; /join one first.")
            return member.current
        room = member.rooms.get(names.fold(requested.removeprefix("#")))
        if room is None:
            raise ChatError(f"You are not in {requested}.")
        return room

    def room(self, requested: str) -> Room:
        """
        The existing room called C{requested}.
        """
        room = self.rooms.get(names.fold(requested.removeprefix("#")))
        if room is None:
            raise ChatError(f"No such room: {requested}.")
        return room

    def _remove(self, member: Member, room: Room) -> None:
        # The leaver sees every line said before it left.
        self._flush_room(room)
        del room.members[member]
        del member.rooms[room.key]
        if not room.members:
            del self.rooms[room.key]

    # Talking

    def say(self, member: Member, text: str) -> None:
        """
        Send C{text} from C{member} to everyone else in its current room.
        """
        room = self.room_of(member, None)
        self._post(room, member, wire.message(room.name, member.nick, text))
        if self.history is not None:
            room.said.append(encode_record(MESSAGE, member.nick, text))

    def act(self, member: Member, text: str) -> None:
        """
        Send a C{/me} action to everyone else in the member's current room.
        """
        room = self.room_of(member, None)
        self._post(room, member, wire.action(room.name, member.nick, text))
        if self.history is not None:
            room.said.append(encode_record(ACTION, member.nick, text))

    def whisper(self, member: Member, nick: str, text: str) -> None:
        """
        Send C{text} from C{member} to the member called C{nick} only.
        """
        target = self.find(nick)
        # Whatever the sender said in its rooms reaches the target first.
        self._flush_rooms_of(member)
        self.tell(target, wire.private(member.nick, text))

    def tell(self, member: Member, line: str) -> None:
        """
        Queue one line for C{member} alone.
        """
        self.stats.deliveries += 1
        self._queue(member, wire.encode(line))

    # Delivery

    def _post(self, room: Room, sender: Member | None, line: str) -> bytes:
        """
        Queue a line for every member of C{room} except C{sender}, and
        return it encoded.
        """
        pending = room.pending
        data = wire.encode(line)
        pending.append((sender, data))
        if len(pending) == 1:
            self._dirty_rooms.append(room)
            self._request_flush()
        return data

    def _queue(self, member: Member, data: bytes) -> None:
        if not member.connected:
            return
        outbox = member.outbox
        outbox.append(data)
        if len(outbox) == 1:
            self._dirty_members.append(member)
            self._request_flush()

    def _request_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._schedule(self.flush)

    def _flush_room(self, room: Room) -> None:
        """
        Turn the room's pending lines into queued output for its members:
        joined once, and shared by every member who sent none of them.
        """
        pending = room.pending
        if not pending:
            return
        room.pending = []
        said = room.said
        if said:
            room.said = []
            assert self.history is not None
            self.history.record(room.key, room.name, said)
        senders: tuple[Member | None, ...] | set[Member | None]
        members = room.members
        if len(pending) == 1:
            sender = pending[0][0]
            senders = (sender,)
            data = pending[0][1]
            deliveries = len(members) - (sender in members)
        else:
            senders = {sender for sender, _ in pending}
            data = b"".join([line for _, line in pending])
            deliveries = len(pending) * len(members) - sum(
                [sender in members for sender, _ in pending]
            )
        if members:
            self.stats.deliveries += deliveries
            self._room_lines += len(pending)
        dirty = self._dirty_members
        for member in members:
            if member in senders:
                mine = b"".join([line for s, line in pending if s is not member])
                if not mine:
                    continue
                out = mine
            else:
                out = data
            outbox = member.outbox
            if not outbox:
                dirty.append(member)
            outbox.append(out)

    def _flush_rooms_of(self, member: Member) -> None:
        """
        Queue the lines pending in C{member}'s rooms, for all their members,
        ahead of whatever is queued next.
        """
        for room in member.rooms.values():
            self._flush_room(room)

    def flush(self) -> None:
        """
        Deliver everything queued: one write per member with output.

        The time this takes is recorded once for each room line delivered:
        it is how long fanning out that line took, from the start of the
        turn's delivery to the last recipient's write.
        """
        started = self._timer()
        rooms, self._dirty_rooms = self._dirty_rooms, []
        for room in rooms:
            self._flush_room(room)
        members, self._dirty_members = self._dirty_members, []
        for member in members:
            self._deliver(member)
        if self._room_lines:
            self.stats.fanout.observe(self._timer() - started, self._room_lines)
            self._room_lines = 0
        self._flush_scheduled = False
        if self._dirty_rooms or self._dirty_members:
            # Delivery made more output (a recipient disconnected, say).
            self._request_flush()

    def _deliver(self, member: Member) -> None:
        outbox = member.outbox
        if not outbox or not member.connected:
            return
        data = outbox[0] if len(outbox) == 1 else b"".join(outbox)
        outbox.clear()
        member.recipient.deliver(data)

    # Listings

    def listing(self) -> Iterator[Room]:
        """
        The rooms, largest first, then by name.
        """
        return iter(sorted(self.rooms.values(), key=lambda r: (-len(r.members), r.key)))

    def who(self, room: Room, limit: int = WHO_LIMIT) -> str:
        """
        The names in C{room}, at most C{limit} of them, as one line of text.
        """
        nicks = [m.nick for m in room.members]
        shown = ", ".join(nicks[:limit])
        if len(nicks) > limit:
            shown += f", and {len(nicks) - limit} more"
        return f"{room.name} ({_count_members(len(nicks))}): {shown}"


def _count_members(n: int) -> str:
    return f"{n} member" if n == 1 else f"{n} members"
