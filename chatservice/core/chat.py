"""
The chat's operations: connecting, naming, rooms and talking, for every
front end alike.

L{Chat} is the application facade front ends call. Each operation takes the
member and, where it matters, the room or nickname explicitly: a front end
that has a "current room" (the line protocol) keeps it itself. Operations
check the rules and raise a typed L{ChatError} when one is broken; what they
tell members goes out as events (L{chatservice.core.events}) through the
L{Fanout}, never as text. Every text argument is made safe to show
(L{sanitize.safe}) here, so no front end can forget to.

No I/O: front ends supply sessions, and a scheduler that says when a turn's
output is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import replace
from itertools import count
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from chatservice.core import errors, events, names
from chatservice.core.audit import Audit
from chatservice.core.fanout import Fanout, Scheduler, immediately
from chatservice.core.history import (
    ACTION,
    DEFAULT_REPLAY,
    FORMATS,
    MESSAGE,
    History,
    Kind,
    Page,
    encode_record,
)
from chatservice.core.moderation import RoomModeration, RoomRecord
from chatservice.core.operators import RoomOperators
from chatservice.core.rooms import Member, Room
from chatservice.core.sanitize import safe
from chatservice.core.server_bans import ServerBans, quit_reason
from chatservice.core.session import Renderer, Session
from chatservice.core.stats import Stats
from chatservice.core.whowas import Whowas

# Bound once: what say_all does for every line.
_Said = events.Said
_message_record = FORMATS[MESSAGE].format

# Events, not I/O: whoever observes the log decides where they go.
log = Logger()


def _nickname(requested: str) -> str:
    try:
        return names.nickname(requested)
    except names.InvalidName as e:
        raise errors.InvalidName("nickname", requested, str(e)) from None


def _room_name(requested: str) -> str:
    try:
        return names.room_name(requested)
    except names.InvalidName as e:
        raise errors.InvalidName("room", requested, str(e)) from None


def _folded_room(requested: str) -> str:
    return names.fold(requested.removeprefix("#"))


class Cluster(Protocol):
    """
    What the chat tells a cluster node of its members (see
    L{chatservice.cluster.replica}), and asks it of nicknames. A chat in
    one process has none.
    """

    def connected(self, member: Member) -> None:
        """C{member} joined the chat here."""

    def changed(self, member: Member) -> None:
        """C{member}'s nickname or account changed."""

    def gone(self, member: Member, reason: str) -> None:
        """C{member} left the chat (or was put out of it), for C{reason}."""

    def claim(self, member: Member, nick: str) -> Deferred[bool]:
        """Take C{nick} for C{member} across the cluster: fires True if taken."""

    def displace(self, holder: Member, nick: str) -> None:
        """
        The owner of C{nick} takes it from C{holder}, a member of another
        process, which is to give it a guest name.
        """


class Chat(RoomOperators, RoomModeration):
    """
    Members, rooms, and what they may do. What a room's operators may do
    (topics, kicks, operator status) is L{RoomOperators}'; who may enter
    and speak, and registered rooms, L{RoomModeration}'s.

    @param schedule: when to write a turn's output (see L{Fanout}).
    @param history: where room messages and actions are recorded, and
        replayed from when a member enters a room; None keeps none.
    @param replay: how many lines of history entering a room replays.
    @param registered: the folded names of registered nicknames: only who
        is logged in as one may use it. The accounts keep it up to date.
    @param motd: the message of the day, lines of text a front end shows
        newcomers.
    @param clock: the wall clock topics are dated by; by default the
        history's, or C{time.time}.
    @ivar members: every member, by folded nickname.
    @ivar rooms: every room, by folded name.
    @ivar whowas: the nicknames members quit or renamed from (IRC's
        C{WHOWAS}).
    @ivar audit: the moderation actions taken; in memory unless whoever
        builds the chat hands in one that saves.
    @ivar server_bans: the server bans, which logging in as an account is
        checked against (addresses are the front ends' admission's to
        check); in memory unless whoever builds the chat hands in one
        that saves.
    """

    def __init__(
        self,
        schedule: Scheduler = immediately,
        history: History | None = None,
        replay: int = DEFAULT_REPLAY,
        stats: Stats | None = None,
        timer: Callable[[], float] = time.perf_counter,
        registered: Container[str] = frozenset(),
        motd: Sequence[str] = (),
        clock: Callable[[], float] | None = None,
        audit: Audit | None = None,
        server_bans: ServerBans | None = None,
    ) -> None:
        self.stats = Stats() if stats is None else stats
        self.fanout = Fanout(schedule, history, self.stats, timer)
        self.history = history
        self.replay = replay
        self.registered = registered
        self.motd = motd
        if clock is None:
            clock = time.time if history is None else history.clock
        self.clock = clock
        self.members: dict[str, Member] = {}
        self.rooms: dict[str, Room] = {}
        self.whowas = Whowas()
        self.audit = Audit(clock) if audit is None else audit
        self.server_bans = ServerBans(clock) if server_bans is None else server_bans
        self.room_records: dict[str, RoomRecord] = {}
        # Where changes to registered rooms are stored, if anywhere.
        self.save_room: Callable[[RoomRecord], object] | None = None
        self.forget_room: Callable[[str], object] | None = None
        self._guest_numbers = count(1)
        # The node this chat is a replica on, in a cluster.
        self.cluster: Cluster | None = None

    # Connection life cycle

    def connect(
        self, session: Session, nick: str, account: str | None = None
    ) -> Member:
        """
        Add a member called C{nick}, in no room yet; logged in as the
        registered nickname C{account}, if given (its owner has just proved
        it). A C{nick} that is the account's own is taken from whoever
        holds it, as L{connect_as} does; any other must be free. An account
        a server ban names is refused (L{errors.ServerBanned}).
        """
        self._check_account(account)
        if account is not None and names.fold(nick) == names.fold(account):
            return self.connect_as(session, account)
        nick = self._available(None, nick)
        member = Member(nick, session)
        if account is not None:
            member.account = names.fold(account)
        self.members[member.folded] = member
        self.stats.most_members = max(self.stats.most_members, len(self.members))
        if self.cluster is not None:
            self.cluster.connected(member)
        return member

    def connect_as(self, session: Session, nick: str) -> Member:
        """
        Add a member logged in as the registered nickname C{nick} (its
        owner has just proved it), in no room yet: whoever holds the name
        is renamed, as L{log_in} does.
        """
        self._check_account(nick)
        folded = names.fold(nick)
        holder = self.members.get(folded)
        if holder is not None:
            self._displace(holder, nick)
        member = Member(nick, session)
        member.account = folded
        self.members[folded] = member
        if self.cluster is not None:
            self.cluster.connected(member)
        return member

    def _check_account(self, account: str | None) -> None:
        ban = self.server_bans.account_ban(account)
        if ban is not None:
            log.info(
                "Refused {account}: the account is banned",
                account=account,
                reason="server ban",
            )
            raise errors.ServerBanned(ban.reason)

    def guest_nick(self) -> str:
        """
        A free nickname of the shape handed to newcomers who have not
        chosen one: C{guest1}, C{guest2}, ...
        """
        while True:
            nick = f"{names.GUEST}{next(self._guest_numbers)}"
            if nick not in self.members and nick not in self.registered:
                return nick

    def skip_guest_numbers(self, count_: int) -> None:
        """
        Pass over the next C{count_} guest numbers: a cluster node whose
        guest name another node took at the same moment steps out of step
        with it, rather than collide again on the next newcomer.
        """
        self._guest_numbers = count(next(self._guest_numbers) + count_)

    def disconnect(self, member: Member, reason: str, announce: bool = True) -> None:
        """
        Remove C{member} everywhere and tell its rooms why (unless not to
        C{announce} it: a cluster node whose rooms were told by another).
        Output still waiting for it is dropped: its connection is gone.
        Calling this again for the same member does nothing.
        """
        if not member.connected:
            return
        member.connected = False
        member.outbox.clear()
        if self.members.get(member.folded) is member:
            del self.members[member.folded]
        self.whowas.record(member, self.clock())
        for room in list(member.rooms.values()):
            self._remove(member, room)
            if announce:
                self.fanout.post(
                    room, None, events.Quit(room.name, member.nick, reason)
                )
        if self.cluster is not None:
            self.cluster.gone(member, reason)

    def quit(self, member: Member, message: str) -> None:
        """
        The member asked to leave: say goodbye, tell its rooms, and close its
        connection after everything queued for it has been delivered.
        """
        self.dismiss(member, events.Goodbye(), safe(message) or "quit")

    def dismiss(self, member: Member, last: events.Event, reason: str) -> None:
        """
        End C{member}'s session: deliver what is queued for it and then
        C{last}, tell its rooms it quit for C{reason}, and ask its
        connection to close once that has been sent.
        """
        if not member.connected:
            return
        self.fanout.flush_rooms_of(member)
        self.fanout.tell(member, last)
        self.fanout.deliver(member)
        self.disconnect(member, reason)
        member.session.close()

    def close_all(self, last: events.Event) -> None:
        """
        The server is stopping: everyone gets what is queued for them, then
        C{last}, and their connections are asked to close. Nobody is told of
        anybody else leaving, as everybody is; that also keeps this linear in
        the number of members.
        """
        self.fanout.flush()
        members = list(self.members.values())
        # Everyone is gone from the chat before anyone's connection is
        # touched: a session that fails while taking its last output finds
        # its member disconnected already, and everyone else still gets
        # theirs.
        for member in members:
            member.connected = False
            member.rooms.clear()
        self.members.clear()
        self.rooms.clear()
        rendered: dict[object, bytes] = {}
        for member in members:
            data = rendered.get(member.renderer)
            if data is None:
                data = rendered[member.renderer] = member.renderer.render(last)
            outbox = member.outbox
            outbox.append(data)
            out = b"".join(outbox)
            outbox.clear()
            member.session.deliver(out)
            member.session.close()
        self.stats.deliveries += len(members)

    # Names

    def _available(self, member: Member | None, requested: str) -> str:
        """
        The nickname C{requested}, checked: valid, and free for C{member}.
        """
        nick = _nickname(requested)
        folded = names.fold(nick)
        holder = self.members.get(folded)
        if holder is not None and holder is not member:
            raise errors.NickTaken(nick)
        if folded in self.registered and (member is None or member.account != folded):
            raise errors.NickRegistered(nick)
        return nick

    def rename(self, member: Member, requested: str) -> None:
        """
        Give C{member} the nickname C{requested}, refusing names that are
        invalid or held by someone else (compared case-insensitively).
        """
        nick = self._available(member, requested)
        if nick == member.nick:
            self.fanout.tell(member, events.SameNick(nick))
            return
        self._check_rename(member, nick)
        if self.cluster is None or names.fold(nick) == member.folded:
            self._set_nick(member, nick)
            return
        # Another process may be giving the name away this very moment:
        # the cluster says who has it.
        self.cluster.claim(member, nick).addCallback(self._claimed, member, nick)

    def _claimed(self, taken: bool, member: Member, nick: str) -> None:
        if not member.connected:
            return
        holder = self.members.get(names.fold(nick))
        if not taken or (holder is not None and holder is not member):
            self.fanout.tell(member, events.Refused(errors.NickTaken(nick)))
            return
        self._set_nick(member, nick)

    def _set_nick(self, member: Member, nick: str) -> None:
        old = member.nick
        log.info("{old} is now known as {nick}", old=old, nick=nick)
        self.whowas.record(member, self.clock())
        if self.members.get(member.folded) is member:
            del self.members[member.folded]
        member.nick, member.folded = nick, names.fold(nick)
        self.members[member.folded] = member
        self.fanout.tell(member, events.NickChanged(nick, old))
        for room in member.rooms.values():
            self.fanout.post(room, member, events.Renamed(room.name, old, nick))
        self._renamed(member)

    def _renamed(self, member: Member) -> None:
        """C{member}'s nickname or account changed: the cluster hears too."""
        super()._renamed(member)
        if self.cluster is not None:
            self.cluster.changed(member)

    def log_in(self, member: Member, nick: str, take_name: bool = True) -> None:
        """
        C{member} has proved it owns the registered nickname C{nick}: give
        it that name, renaming whoever else holds it (a guest who took it
        while it was free, or an older session of the owner's) to a guest
        name.

        Without C{take_name} (IRC's SASL, whose clients expect to keep
        their nickname), the member keeps its name if it may: if that is
        not registered to another account.

        An account a server ban names is not logged in: the member is
        disconnected, told the ban's reason.
        """
        ban = self.server_bans.account_ban(nick)
        if ban is not None:
            log.info(
                "{nick} disconnected: the account {account} is banned",
                nick=member.nick,
                account=nick,
                reason="server ban",
            )
            self.dismiss(
                member,
                events.Refused(errors.ServerBanned(ban.reason)),
                quit_reason(ban),
            )
            return
        folded = names.fold(nick)
        if (
            not take_name
            and member.folded != folded
            and member.folded not in self.registered
        ):
            member.account = folded
            self._renamed(member)
            return
        holder = self.members.get(folded)
        if holder is not None and holder is not member:
            self._displace(holder, nick)
        member.account = folded
        if member.nick != nick:
            self._set_nick(member, nick)
        else:
            self._renamed(member)

    def _displace(self, holder: Member, nick: str) -> None:
        """
        The owner of C{nick} is taking it from C{holder}, who gets a guest
        name instead: here, or, for a member of another process, there.
        """
        if holder.remote and self.cluster is not None:
            self.cluster.displace(holder, nick)
            if self.members.get(holder.folded) is holder:
                del self.members[holder.folded]
            return
        holder.account = None
        self.fanout.tell(holder, events.Displaced(nick))
        self._set_nick(holder, self.guest_nick())

    def log_out(self, member: Member) -> None:
        """
        C{member} gives up its account, and so its registered name.
        """
        member.account = None
        self.fanout.tell(member, events.LoggedOut())
        if member.folded in self.registered:
            self._set_nick(member, self.guest_nick())
        else:
            self._renamed(member)

    def find(self, nick: str) -> Member:
        """
        The member called C{nick}, in any case.
        """
        member = self.members.get(names.fold(nick))
        if member is None:
            raise errors.NoSuchNick(nick)
        return member

    # Rooms

    def join(
        self,
        member: Member,
        requested: str,
        announce: bool = True,
        key: str | None = None,
    ) -> Room:
        """
        Put C{member} in the room C{requested}, creating it, and tell it the
        room's topic, if it has one, and replay the room's history to it. A
        member already in the room stays as it is. Whoever enters a room
        empty is its operator, unless it is registered to someone else.
        The room's rules may refuse it (L{RoomModeration._admit}).

        @param announce: tell the member it entered, and how many are there.
        @param key: the room's key, if the member gave one.
        """
        name = _room_name(requested)
        folded = names.fold(name)
        room = member.rooms.get(folded)
        if room is not None:
            return room
        room = self.rooms.get(folded)
        if room is None:
            room = self.make_room(name)
            self._admit(member, room, key)
            self.rooms[folded] = room
        else:
            self._admit(member, room, key)
        # Lines said before the join are not the joiner's to see.
        self.fanout.flush_room(room)
        if not room.members and room.founder is None:
            room.operators.add(member)
        room.add(member)
        member.rooms[folded] = room
        self._entered(member, room)
        log.info("{nick} joined {room}", nick=member.nick, room=room.name)
        if announce:
            self.fanout.tell(member, events.Entered(room.name, len(room.members)))
        if room.topic is not None:
            self.fanout.tell(member, room.topic)
        if self.history is not None:
            self.replay_history(member, room, self.replay)
        self.fanout.post(room, member, events.Joined(room.name, member.nick))
        return room

    def make_room(self, name: str) -> Room:
        """
        A new room called C{name} (valid already), not yet among the
        rooms: as its registration, if any, and its last topic left it.
        """
        room = Room(name, self.clock())
        self._restore(room)
        topic = None if self.history is None else self.history.topics.get(room.folded)
        if topic is not None:
            # The room may be spelt otherwise this time.
            room.topic = replace(topic, room=room.name)
        return room

    def replay_history(self, member: Member, room: Room, n: int) -> int:
        """
        Tell C{member} the last C{n} lines said in C{room}. The history is
        in memory, so nothing said after this can come first. Returns how
        many lines were replayed.
        """
        if self.history is None:
            raise errors.NoHistory()
        # Lines said earlier this turn are history already.
        self.fanout.flush_room(room)
        lines = [
            events.HistoryLine(entry.time, entry.kind, entry.sender, entry.text)
            for entry in self.history.recent(room.folded, n)
        ]
        if lines:
            before = self.history.before(room.folded, len(lines))
            self.fanout.tell(member, events.Replay(room.name, lines, before))
        return len(lines)

    async def history_page(
        self, member: Member, room: Room, n: int, before: str | None
    ) -> Page:
        """
        Up to C{n} lines said in C{room} before the cursor C{before} (one a
        L{events.Replay} or an earlier page handed out), oldest first, with
        the cursor of the page before them. Lines the memory no longer
        holds are read from the database, off the reactor thread; nothing
        is told, so that each front end shows a page as it likes. Raises
        L{errors.BadCursor} for a cursor that is not one of this room's.
        """
        if self.history is None:
            raise errors.NoHistory()
        if member.rooms.get(room.folded) is not room:
            raise errors.NotInRoom(room.name)
        self.fanout.flush_room(room)
        return await self.history.page(room.folded, n, before)

    def part(self, member: Member, room: Room, reason: str = "") -> None:
        """
        Take C{member} out of C{room}, saying C{reason} if it gives one.
        """
        if member.rooms.get(room.folded) is not room:
            raise errors.NotInRoom(room.name)
        self._remove(member, room)
        log.info("{nick} left {room}", nick=member.nick, room=room.name)
        self.fanout.post(room, None, events.Left(room.name, member.nick, safe(reason)))

    def room_of(self, member: Member, requested: str) -> Room:
        """
        The room called C{requested}, which C{member} must be in.
        """
        room = member.rooms.get(_folded_room(requested))
        if room is None:
            raise errors.NotInRoom(requested)
        return room

    def room(self, requested: str) -> Room:
        """
        The existing room called C{requested}.
        """
        room = self.rooms.get(_folded_room(requested))
        if room is None:
            raise errors.NoSuchRoom(requested)
        return room

    def _remove(self, member: Member, room: Room) -> None:
        # The leaver sees every line said before it left.
        self.fanout.flush_room(room)
        room.remove(member)
        del member.rooms[room.folded]
        if not room.members:
            del self.rooms[room.folded]

    # Talking

    def say(self, member: Member, room: Room, text: str, tags: str = "") -> None:
        """
        Send C{text} from C{member} to everyone else in C{room}, with the
        client's C{tags} (see L{events.Said}), if any.
        """
        if not tags:
            self.say_all(member, room, (text,))
            return
        self._may_speak(member, room)
        text = safe(text)
        self._spoken(room, member, _Said(room.name, member.nick, text, tags), MESSAGE)

    def say_all(self, member: Member, room: Room, texts: Iterable[str]) -> None:
        """
        Send each of C{texts}, in order, from C{member} to everyone else in
        C{room}: what L{say} does for each, checked once. A front end that
        has read several lines for one room at once hands them over in one
        call, and the busiest path of all costs no call per line.
        """
        if member.rooms.get(room.folded) is not room:
            self._check_outsider(member, room)
        elif room.gagged:
            self._check_voice(member, room)
        name = room.name
        nick = member.nick
        pending = room.pending
        first = not pending
        record = room.to_record.append if self.history is not None else None
        for text in texts:
            if not text.isprintable():
                text = safe(text)
            pending.append((member, _Said(name, nick, text)))
            if record is not None:
                record(_message_record(nick, text).encode())
        if first and pending:
            self.fanout.dirty(room)

    def act(self, member: Member, room: Room, text: str, tags: str = "") -> None:
        """
        Send an action (C{/me}) from C{member} to everyone else in C{room}.
        """
        self._may_speak(member, room)
        text = safe(text)
        self._spoken(
            room, member, events.Acted(room.name, member.nick, text, tags), ACTION
        )

    def notice(self, member: Member, room: Room, text: str, tags: str = "") -> None:
        """
        Send a notice (IRC's C{NOTICE}) from C{member} to everyone else in
        C{room}. It is kept in the history as a message.
        """
        self._may_speak(member, room)
        text = safe(text)
        self._spoken(
            room, member, events.Noticed(room.name, member.nick, text, tags), MESSAGE
        )

    def _spoken(
        self,
        room: Room,
        member: Member,
        event: events.Said | events.Acted | events.Noticed,
        kind: Kind,
    ) -> None:
        """
        Queue a line C{member} said in C{room}, its history record first: a
        flush that runs at once (a test's, or one as the cluster's log is
        applied) then takes the two together.
        """
        if self.history is not None:
            room.to_record.append(encode_record(kind, member.nick, event.text))
        self.fanout.post(room, member, event)

    def _may_speak(self, member: Member, room: Room) -> None:
        """
        Check that C{member} may speak in C{room}: from inside, unless it
        is gagged and the member is silenced; from outside, if the room
        lets it.
        """
        if member.rooms.get(room.folded) is not room:
            self._check_outsider(member, room)
        elif room.gagged:
            self._check_voice(member, room)

    def whisper(
        self,
        member: Member,
        nick: str,
        text: str,
        notice: bool = False,
        tags: str = "",
    ) -> events.Private:
        """
        Send C{text} from C{member} to the member called C{nick} only; as a
        notice if C{notice}. Returns what the addressee was told, for a
        front end that shows senders their own messages (IRC's
        C{echo-message}).
        """
        target = self.find(nick)
        # Whatever the sender said in its rooms reaches the target first.
        self.fanout.flush_rooms_of(member)
        private = events.Private(member.nick, safe(text), notice, tags)
        self.fanout.tell(target, private)
        return private

    def tell(self, member: Member, event: events.Event) -> None:
        """
        Queue C{event} for C{member} alone.
        """
        self.fanout.tell(member, event)

    def set_renderer(self, member: Member, renderer: Renderer) -> None:
        """
        C{member}'s session now renders with C{renderer} (an IRC client
        that negotiated capabilities after registering, say). What its rooms
        had pending goes out first, rendered as before; from then on each
        room renders for it in C{renderer}'s group.
        """
        if renderer is member.renderer:
            return
        self.fanout.flush_rooms_of(member)
        old = member.renderer
        member.renderer = renderer
        for room in member.rooms.values():
            room.regroup(member, old)

    def flush(self) -> None:
        """
        Deliver everything queued now, rather than at the end of the turn.
        """
        self.fanout.flush()

    # Listings

    def listing(self) -> Iterator[Room]:
        """
        The rooms, largest first, then by name.
        """
        return iter(
            sorted(self.rooms.values(), key=lambda r: (-len(r.members), r.folded))
        )

    def names(self, member: Member, room: Room) -> None:
        """
        Tell C{member} who is in C{room}, and who of them are operators;
        of a secret room it is not in, that nobody is.
        """
        self.fanout.tell(member, self.names_of(member, room))

    def names_of(self, member: Member, room: Room) -> events.Names:
        """
        Who in C{room} C{member} may see: everyone, or nobody in a secret
        room it is not in.
        """
        if not room.visible_to(member):
            return events.Names(room.name, [], secret=True)
        return events.Names(
            room.name,
            [m.nick for m in room.members],
            frozenset([m.nick for m in room.operators]),
            frozenset([m.nick for m in room.voiced]),
            room.secret,
        )

    def list_rooms(
        self, member: Member, wanted: Callable[[Room], bool] | None = None
    ) -> None:
        """
        Tell C{member} every room it may see (not another's secret room),
        or those of them that are C{wanted}, and how many are in each.
        """
        self.fanout.tell(
            member,
            events.RoomList(
                [
                    (room.name, len(room.members))
                    for room in self.listing()
                    if room.visible_to(member) and (wanted is None or wanted(room))
                ]
            ),
        )
