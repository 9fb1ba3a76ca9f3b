"""
A node's replica of the chat, kept in step with the cluster's other nodes.

Every node's L{Chat} holds the whole chat: its own members, whose sessions
are here, and everyone else's, as members with a L{RemoteSession} (they are
in rooms, listings and names, and the rules count them, but nothing is
rendered for them here). L{Replica} sits on the chat's seam to the cluster:

  - B{Out.} The fan-out hands it each room's events of the turn instead of
    delivering them (L{Relay.room}); what is told a remote member, and what
    changes of a member here (connected, renamed, logged in, gone), go the
    same way. At the end of the turn all of it is one batch, one
    L{Backplane.publish}: Redis work follows turns, not lines.
  - B{In.} Every batch of the log, this node's own included, is applied in
    the log's order: members of other nodes appear, move and go; rooms'
    settings, topics, lists and statuses are set; and each room's events
    are shared with the members here, rendered once per renderer. So every
    node shows every room in the log's one order, a node's own lines
    included, at the cost of a round trip to Redis.

What a member here does to the chat is done at once, here, as in a single
process (its refusals are immediate); what it does to rooms is set again
when it comes back through the log, so that where two nodes changed one
thing at once, all end as the log's order says. Who is in which room is
the exception: for this node's own members it is what they did here; for
everyone else's, what the log says.

Nicknames are claimed in the backplane before a rename takes effect
(L{chatservice.core.chat.Cluster.claim}); a newcomer's is claimed as it
arrives, and one that loses a race (two nodes, one name, the same moment)
gets a guest name and is told why.

Encoding is L{chatservice.cluster.codec}'s; the entries of a batch are
lists whose first item says what they are:

  - C{["m", sid, nick, account, address, user, real]}: a member of the
    publishing node is there, under that name and account.
  - C{["g", sid, reason]}: a member is gone (from its own node), or must go
    (from another node: killed).
  - C{["r", room, items]}: a room's events, with who caused each (see
    L{codec.encode_room}: a sender's run of lines is one item, and a join
    says whether the joiner is an operator); for a part or a quit, who
    left (a node applies it only to that member, never to whoever has the
    name by then).
  - C{["t", sid, event]}: an event for one member.
  - C{["h"]}: a node started; the others answer with C{"m"}, C{"p"} and
    C{"s"} entries of what they hold.
  - C{["p", sid, room, operator, voiced]}: a member is in a room.
  - C{["s", room, state]}: a room's topic, settings and lists.
  - C{["n", node, reason]}: a node was lost, or stopped; its members quit
    for C{reason}.
  - C{["d", sid, nick]}: the owner of the registered C{nick}, logged in
    elsewhere, takes it from this member, which becomes a guest.
  - C{["a", key]}: an account was registered (and stored); the others
    read it, so that its name is registered there too.
  - C{["k", ServerBanAdded]}, C{["u", mask]}: a server ban set or lifted
    (the node where it was stored it; the others keep it in memory).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from chatservice.cluster import codec
from chatservice.cluster.backplane import Backplane, Batch
from chatservice.core import events, names
from chatservice.core.accounts import Accounts
from chatservice.core.chat import Chat
from chatservice.core.errors import NickTaken
from chatservice.core.events import Event
from chatservice.core.history import ACTION, MESSAGE, Kind, encode_record
from chatservice.core.masks import Mask
from chatservice.core.rooms import Member, Room

log = Logger()

NODE_LOST = "node lost"
"""The reason members of a lost node are seen to quit with."""
SHUTTING_DOWN = "server shutting down"
"""The reason members of a node that stopped are seen to quit with."""

# Tries at a free guest name before giving up on a newcomer.
GUEST_TRIES = 10
# Most reactor turns a node's output is held back while one of its
# batches is on its way round (a batch lost on the way must not hold the
# next for ever).
HOLD_TURNS = 50
# Most of this node's published batches kept to apply as they were when
# they come back, and most bytes of them.
MINE_KEPT = 256
MINE_BYTES = 64 * 1024 * 1024
# How long output for members here is held, in seconds, from when the
# first of it waited, while this node's batches go round (see
# Replica.holding).
DELIVERY_HOLD = 0.005
# A delivery that took this long, in seconds, or longer, paces the next:
# output waits as long again after it, but never longer than HOLD_MOST
# (see Replica.holding).
PACE_FROM = 0.002
HOLD_MOST = 0.05
# At most how many guest numbers a node skips after a collision.
GUEST_SCATTER = 100

_SPOKEN: dict[type[Event], Kind] = {
    events.Said: MESSAGE,
    events.Noticed: MESSAGE,
    events.Acted: ACTION,
}
# What an entry that is not as this module writes them raises on the way
# in: input from the network, logged and skipped, never a traceback.
_MALFORMED = (codec.CodecError, IndexError, KeyError, TypeError, ValueError)
_MEMBERSHIP = (events.Joined, events.Left, events.Quit, events.Kicked)
_DEPARTURES = (events.Left, events.Quit)
_STATUS: dict[type[Event], tuple[str, bool]] = {
    events.Opped: ("operators", True),
    events.Deopped: ("operators", False),
    events.Voiced: ("voiced", True),
    events.Devoiced: ("voiced", False),
}


def _encoded(event: Event) -> object | None:
    """
    C{event} as the log carries it; None for one a front end made for its
    own connections (IRC's C{TAGMSG}), which stays on this node.
    """
    try:
        return codec.encode_event(event)
    except codec.CodecError:
        log.debug("Not carried to other nodes: {event!r}", event=event)
        return None


def _room_on_the_wire(items: list[tuple[Any, ...]]) -> list[list[object]]:
    """
    A room's entry's items (session id, event, and for a join whether the
    joiner is an operator) as the log carries them. Items whose event the
    log does not carry are left out, of C{items} too: the author applies
    what the others do.
    """
    try:
        return codec.encode_room(items)
    except codec.CodecError:
        kept = []
        for item in items:
            try:
                codec.encode_room([item])
            except codec.CodecError:
                log.debug("Not carried to other nodes: {event!r}", event=item[1])
                continue
            kept.append(item)
        items[:] = kept
        return codec.encode_room(items)


class _Silent:
    """The renderer of members of other nodes: nothing is rendered here."""

    def render(self, event: Event) -> bytes:
        return b""

    def render_to(self, nick: str, event: Event) -> bytes:
        return b""


SILENT = _Silent()


class RemoteSession:
    """
    A member's session as a node other than its own sees it: where it is,
    and what its client said of itself; delivering and closing are its own
    node's.
    """

    remote = True
    renderer = SILENT

    def __init__(
        self, node: str, sid: str, address: str, identity: tuple[str, str] | None
    ) -> None:
        self.node = node
        self.sid = sid
        self.address = address
        self.identity = identity

    def deliver(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class Replica:
    """
    The node: the chat's seam to the backplane (see the module docstring).

    @ivar local: this node's members, by session id.
    @ivar ghosts: other nodes' members, by session id.
    """

    def __init__(
        self,
        chat: Chat,
        backplane: Backplane,
        accounts: Accounts | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        self.chat = chat
        # Without a clock, output is never held (see holding).
        self._clock = clock
        self._hold: IDelayedCall | None = None
        self._delivered = 0.0
        self.accounts = accounts
        if accounts is not None:
            accounts.announce = lambda key: self._send(["a", key])
        self.backplane = backplane
        self.node = backplane.node
        self.local: dict[str, Member] = {}
        self.ghosts: dict[str, Member] = {}
        self._sids: dict[Member, str] = {}
        self._claimed: dict[Member, str] = {}
        # Guest names left to try, for newcomers whose name was taken.
        self._tries: dict[Member, int] = {}
        # Names an owner here takes from a member of another node.
        self._taking: set[str] = set()
        # Other nodes' members whose name a member here still held when
        # they took it (it is being given up), by folded name.
        self._waiting: dict[str, Member] = {}
        # Session ids of the members gone this turn, by folded name: their
        # quits carry them (see L{room}).
        self._departed: dict[str, str] = {}
        self._numbers = count(1)
        self._out: list[object] = []
        # Entries that must follow the turn's room events ("g").
        self._last: list[object] = []
        chat.cluster = self
        chat.fanout.relay = self
        self._save_room = chat.save_room
        chat.save_room = self._keep_room
        self._stopping = False
        # This node's batches published and not yet back through the log,
        # and the turns held back meanwhile.
        self._in_the_air = 0
        self._held_turns = 0
        # This node's batches on their way round, as they were before they
        # were encoded, by what was published: a batch that comes back is
        # applied from these, not decoded again. Oldest first, and bounded:
        # one that is lost on the way is decoded like anyone else's if it
        # ever comes back.
        self._mine: dict[bytes, list[Any]] = {}
        self._mine_bytes = 0
        bans = chat.server_bans
        bans.announce_set = lambda ban: self._send(
            ["k", codec.encode_event(events.ServerBanAdded(ban, 0))]
        )
        bans.announce_lifted = lambda mask: self._send(["u", mask])

    def start(self) -> Deferred[None]:
        """Join the cluster, and ask the others what they hold."""
        d = self.backplane.start(self)

        def started(_: None) -> None:
            self._send(["h"])

        return d.addCallback(started)

    def stop(self, reason: str = SHUTTING_DOWN) -> Deferred[None]:
        """
        Leave the cluster: the others see this node's users quit for
        C{reason}.
        """
        self._out.append(["n", self.node, reason])
        # Nothing more will come back to wait for.
        self._settled()
        self._forget()
        self.flush()
        self._stopping = True
        if self._hold is not None:
            # Output is no longer held (see holding): nothing to release.
            self._hold.cancel()
            self._hold = None
        return self.backplane.stop()

    # Out: the chat's Cluster

    def connected(self, member: Member) -> None:
        sid = f"{self.node}/{next(self._numbers)}"
        self.local[sid] = member
        self._sids[member] = sid
        self._send(self._member_entry(sid, member))
        self._claim_now(member)

    def changed(self, member: Member) -> None:
        sid = self._sids.get(member)
        if sid is None or member.remote:
            return
        self._send(self._member_entry(sid, member))
        if self._claimed.get(member) != member.folded:
            self._claim_now(member)

    def gone(self, member: Member, reason: str) -> None:
        if member.remote:
            sid = member.session.sid  # type: ignore[attr-defined]
            if self.chat.fanout.applying:
                self.ghosts.pop(sid, None)
            else:
                # Put out by someone here (killed): its node closes it.
                self._departed[member.folded] = sid
                self._later(["g", sid, reason])
            return
        sid = self._sids.pop(member, "")
        if not self.chat.fanout.applying:
            self._departed[member.folded] = sid
        self.local.pop(sid, None)
        key = self._claimed.pop(member, None)
        if key is not None:
            self.backplane.release(key, sid)
        if not self.chat.fanout.applying:
            self._later(["g", sid, reason])

    def claim(self, member: Member, nick: str) -> Deferred[bool]:
        return self.backplane.claim(names.fold(nick), self._sids.get(member, ""))

    def displace(self, holder: Member, nick: str) -> None:
        self._taking.add(names.fold(nick))
        self._send(["d", self._sid_of(holder), nick])

    def _claim_now(self, member: Member) -> None:
        """
        Claim C{member}'s name, which it has taken already; if another node
        has it, give the member a guest name instead, and tell it why.
        """
        sid = self._sids[member]
        key = member.folded
        old = self._claimed.get(member)

        def claimed(taken: bool) -> None:
            if not member.connected or member.folded != key:
                if taken and self._claimed.get(member) != key:
                    self.backplane.release(key, sid)
                return
            if taken:
                self._claimed[member] = key
                self._tries.pop(member, None)
                if old is not None and old != key:
                    self.backplane.release(old, sid)
                return
            log.info(
                "{nick} is taken on another node: {sid} becomes a guest",
                nick=member.nick,
                sid=sid,
            )
            refusal = events.Refused(NickTaken(member.nick))
            tries = self._tries.get(member, GUEST_TRIES)
            if tries <= 0:
                self._tries.pop(member, None)
                self.chat.dismiss(member, refusal, "no free nickname")
                return
            self._tries[member] = tries - 1
            if names.is_guest_nick(member.nick):
                # Another node hands out the same guest numbers at the same
                # pace: step away from it.
                self.chat.skip_guest_numbers(random.randint(1, GUEST_SCATTER))
            self.chat.tell(member, refusal)
            # _set_nick tells the cluster, which claims the new name.
            self.chat._set_nick(member, self.chat.guest_nick())

        force = key in self._taking
        self._taking.discard(key)
        self.backplane.claim(key, sid, force).addCallback(claimed)

    # Out: the fan-out's Relay

    def room(
        self,
        room: Room,
        pending: list[tuple[Member | None, Event]],
        records: list[bytes],
    ) -> None:
        # The events stay as they are until the batch is published (see
        # _publish), and this node applies them as they are, with the
        # history's records the chat made of them, when the batch comes
        # back.
        items: list[tuple[Any, ...]] = []
        for sender, event in pending:
            kind = type(event)
            if sender is None:
                if kind in _DEPARTURES:
                    # Who went, not only under which name: see _room_events.
                    items.append((self._departure(event.nick), event))  # type: ignore[attr-defined]
                else:
                    items.append((None, event))
                continue
            sid = self._sid_of(sender)
            if kind is events.Joined:
                items.append((sid, event, sender in room.operators))
            else:
                items.append((sid, event))
        self._out.append(["r", room.name, items, records])

    def tell(self, member: Member, event: Event) -> None:
        encoded = _encoded(event)
        if encoded is not None:
            self._send(["t", self._sid_of(member), encoded])

    def flush(self) -> None:
        if self._last:
            self._out.extend(self._last)
            self._last = []
        self._departed.clear()
        if not self._out:
            return
        if (
            self._in_the_air or self.backplane.waiting()
        ) and self._held_turns < HOLD_TURNS:
            # A batch of this node's is on its way round (to the log and
            # back): this turn's goes with the next turns', in one, once it
            # is back. Under load batches grow, and Redis's calls and every
            # node's writes per line shrink; at a low rate nothing waits.
            self._held_turns += 1
            return
        self._held_turns = 0
        entries, self._out = self._out, []
        self._in_the_air += 1
        self._publish(entries)

    def holding(self) -> bool:
        # Output for members here waits, briefly, so that under load a
        # member gets one write for many lines, and at a low rate each line
        # at once:
        # - While a batch of this node's is on its way round, for what comes
        #   back and what the others send meanwhile: DELIVERY_HOLD from
        #   when the first of it waited (or as long as a hold for the pace,
        #   below, that was running already: HOLD_MOST at most).
        # - Until as long as the last delivery took has passed since it
        #   ended, if that was PACE_FROM or more (many members):
        #   one process does that without trying, as it reads what came in
        #   while it wrote; a node's input from the others comes at their
        #   pace, and without this a node with many members and little
        #   input of its own would write each batch of theirs apart, many
        #   small writes that cost the kernel more than its fan-out.
        if self._clock is None or self._stopping:
            return False
        now = self._clock.seconds()
        hold = self._hold
        if hold is not None and not hold.active():
            # Its time is up: this flush delivers, and the next hold starts
            # with the next flush that has output to hold.
            self._hold = None
            self._delivered = now
            return False
        if self._in_the_air:
            wait = DELIVERY_HOLD
        else:
            took = self.chat.fanout.last_delivery
            wait = self._delivered + 2 * took - now if took >= PACE_FROM else 0.0
        if wait <= 0:
            if hold is not None:
                self._hold = None
                hold.cancel()
            self._delivered = now
            return False
        if hold is None:
            self._hold = self._clock.callLater(min(wait, HOLD_MOST), self._release)
        return True

    def _release(self) -> None:
        """Output has been held long enough: deliver it."""
        self.chat.fanout.request_flush()

    def _settled(self) -> None:
        """Nothing of this node's is on its way round any longer."""
        self._in_the_air = 0
        if self._hold is not None:
            # The output held waits on only if this turn sends more round.
            self.chat.fanout.request_flush()

    def drained(self) -> None:
        self.flush()

    def _came_back(self) -> None:
        """One of this node's batches came back through the log."""
        if self._in_the_air > 1:
            self._in_the_air -= 1
            return
        self._settled()
        if self._out:
            self.chat.fanout.request_flush()

    def _departure(self, nick: str) -> str | None:
        """The session id of who left or quit as C{nick} this turn."""
        folded = names.fold(nick)
        sid = self._departed.get(folded)
        if sid is None:
            member = self.chat.members.get(folded)
            sid = None if member is None else self._sid_of(member) or None
        return sid

    def _publish(self, entries: list[Any]) -> None:
        wire = [
            ["r", entry[1], _room_on_the_wire(entry[2])] if entry[0] == "r" else entry
            for entry in entries
        ]
        self._publish_wire(entries, wire)

    def _publish_wire(self, entries: list[Any], wire: list[object]) -> None:
        try:
            data = codec.dumps(wire)
        except codec.CodecError as e:
            if len(entries) > 1:
                # Too big for one batch: two, in order.
                half = len(entries) // 2
                self._publish_wire(entries[:half], wire[:half])
                self._publish_wire(entries[half:], wire[half:])
                return
            log.error("Dropped an entry the cluster cannot carry: {why}", why=str(e))
            return
        self._keep(data, entries)
        self.backplane.publish(data)

    def _keep(self, data: bytes, entries: list[Any]) -> None:
        """Keep a batch published, to apply as it is when it comes back."""
        mine = self._mine
        if data in mine:
            return  # The same bytes twice: either applies as the other.
        mine[data] = entries
        self._mine_bytes += len(data)
        while len(mine) > MINE_KEPT or self._mine_bytes > MINE_BYTES:
            oldest = next(iter(mine))
            del mine[oldest]
            self._mine_bytes -= len(oldest)

    def _kept(self, data: bytes) -> list[Any] | None:
        """The entries of a batch of this node's, if they were kept."""
        entries = self._mine.pop(data, None)
        if entries is not None:
            self._mine_bytes -= len(data)
        return entries

    def _forget(self) -> None:
        """Nothing kept will come back."""
        self._mine.clear()
        self._mine_bytes = 0

    def _send(self, entry: object) -> None:
        self._out.append(entry)
        self.chat.fanout.request_flush()

    def _later(self, entry: object) -> None:
        self._last.append(entry)
        self.chat.fanout.request_flush()

    def _sid_of(self, member: Member) -> str:
        if member.remote:
            sid: str = member.session.sid  # type: ignore[attr-defined]
            return sid
        return self._sids.get(member, "")

    def _member_entry(self, sid: str, member: Member) -> list[object]:
        identity = getattr(member.session, "identity", None) or ("", "")
        return [
            "m",
            sid,
            member.nick,
            member.account,
            member.address,
            identity[0],
            identity[1],
        ]

    def _keep_room(self, record: Any) -> None:
        # A registered room changed by the log is stored by its author.
        if self._save_room is not None and not self.chat.fanout.applying:
            self._save_room(record)

    # In: the backplane's Listener

    def batch(self, batch: Batch) -> None:
        own = batch.node == self.node
        entries = None
        if own:
            self._came_back()
            entries = self._kept(batch.data)
        # Whether the entries are this node's own, as they were published.
        kept = entries is not None
        if entries is None:
            try:
                entries = codec.loads(batch.data)
            except codec.CodecError as e:
                log.warn(
                    "Skipped batch {seq} from {node}: {why}",
                    seq=batch.seq,
                    node=batch.node,
                    why=str(e),
                )
                return
        with self._applying():
            for entry in entries:
                try:
                    self._apply(entry, batch.node, own, kept)
                except _MALFORMED as e:
                    log.warn(
                        "Skipped a malformed entry of batch {seq} from {node}: {why}",
                        seq=batch.seq,
                        node=batch.node,
                        why=f"{type(e).__name__}: {e}"[:200],
                    )
                except Exception:
                    log.failure(
                        "Applying an entry of batch {seq} from {node} failed",
                        seq=batch.seq,
                        node=batch.node,
                    )
        if self._waiting:
            self._seat_waiting()

    def _seat_waiting(self) -> None:
        """Give members of other nodes the names that were freed for them."""
        members = self.chat.members
        for key, ghost in list(self._waiting.items()):
            if not ghost.connected or ghost.folded != key:
                del self._waiting[key]
            elif key not in members:
                members[key] = ghost
                del self._waiting[key]

    def missed(self, count: int) -> None:
        # Whatever of this node's was lost will not come back.
        self._settled()
        self._forget()
        log.warn(
            "{count} batches of the cluster log were lost here: some lines "
            "were not delivered",
            count=count,
        )

    def reset(self, epoch: str) -> None:
        self._settled()
        self._forget()
        log.warn(
            "The cluster log began anew ({epoch}): claiming this node's names again",
            epoch=epoch,
        )
        for member in list(self.local.values()):
            self._claimed.pop(member, None)
            self._claim_now(member)

    def claims_lost(self, keys: list[str]) -> None:
        lost = set(keys)
        for member in list(self.local.values()):
            if self._claimed.get(member) in lost:
                self._claimed.pop(member, None)
                self.chat.dismiss(
                    member,
                    events.Killed(self.node, "your nickname was lost"),
                    "nickname lost",
                )

    def node_lost(self, node: str) -> None:
        log.warn("Node {node} is lost", node=node)
        self._send(["n", node, NODE_LOST])

    def fenced(self) -> None:
        log.error(
            "Cut off from the cluster for longer than the lease: dropping "
            "{count} users",
            count=len(self.local),
        )
        self._drop_everyone("cut off from the cluster")

    # Applying the log

    @contextmanager
    def _applying(self) -> Iterator[None]:
        fanout = self.chat.fanout
        fanout.applying = True
        try:
            yield
        finally:
            fanout.applying = False

    def _apply(self, entry: Any, node: str, own: bool, kept: bool = False) -> None:
        kind = entry[0]
        if kind == "r":
            self._room_events(entry[1], entry[2], own, entry[3] if kept else None)
        elif kind == "m":
            if not own:
                self._member(node, entry[1:])
        elif kind == "t":
            self._tell(entry[1], codec.decode_event(entry[2]))
        elif kind == "g":
            self._gone(entry[1], entry[2])
        elif kind == "p":
            if not own:
                self._present(*entry[1:5])
        elif kind == "s":
            if not own:
                self._room_state(entry[1], entry[2])
        elif kind == "h":
            if not own:
                self._answer_hello()
        elif kind == "n":
            self._node_lost(entry[1], entry[2])
        elif kind == "d":
            member = self.local.get(entry[1])
            if member is not None and member.folded == names.fold(entry[2]):
                with self._not_applying():
                    self.chat._displace(member, entry[2])
        elif kind == "a":
            if not own and self.accounts is not None:
                self.accounts.learn(entry[1])
        elif kind == "k":
            if not own:
                added = codec.decode_event(entry[1])
                assert isinstance(added, events.ServerBanAdded)
                self.chat.server_bans.put(added.entry)
        elif kind == "u":
            if not own:
                self.chat.server_bans.lift(entry[1])
        else:
            log.warn("Unknown cluster entry {kind!r}", kind=kind)

    def _member(self, node: str, fields: list[Any]) -> None:
        sid, nick, account, address, user, real = fields
        chat = self.chat
        ghost = self.ghosts.get(sid)
        folded = names.fold(nick)
        if ghost is None:
            session = RemoteSession(node, sid, address, (user, real) if user else None)
            ghost = Member(nick, session)
            ghost.account = account
            self.ghosts[sid] = ghost
        else:
            if chat.members.get(ghost.folded) is ghost:
                del chat.members[ghost.folded]
            ghost.nick, ghost.folded = nick, folded
            ghost.account = account
        holder = chat.members.get(folded)
        if holder is not None and holder is not ghost:
            # The holder is giving it up (the cluster's claim said so):
            # the name is this one's once it has.
            self._waiting[folded] = ghost
            return
        chat.members[folded] = ghost
        for room in ghost.rooms.values():
            if room.quiets:
                chat._silence(ghost, room)

    def _gone(self, sid: str, reason: str) -> None:
        # Its rooms were told by the node that put it out.
        member = self.local.get(sid)
        if member is not None:
            # Put out from another node: what it was told goes first.
            self.chat.fanout.deliver(member)
            self.chat.disconnect(member, reason, announce=False)
            member.session.close()
            return
        ghost = self.ghosts.get(sid)
        if ghost is not None:
            self.chat.disconnect(ghost, reason, announce=False)

    def _tell(self, sid: str, event: Event) -> None:
        member = self.local.get(sid)
        if member is None or not member.connected:
            return
        if type(event) is events.Invited:
            room = self.chat.rooms.get(names.fold(event.room))
            if room is not None:
                room.invited.add(member.folded)
                if member.account is not None:
                    room.invited.add(member.account)
        self.chat.fanout.tell(member, event)

    def _room(self, name: str) -> Room:
        chat = self.chat
        folded = names.fold(name)
        room = chat.rooms.get(folded)
        if room is None:
            room = chat.rooms[folded] = chat.make_room(name)
        return room

    def _enter(self, member: Member, room: Room, operator: bool) -> None:
        if member.rooms.get(room.folded) is room:
            return
        if operator:
            room.operators.add(member)
        room.add(member)
        member.rooms[room.folded] = room
        self.chat._entered(member, room)

    def _leave(self, member: Member | None, room: Room) -> None:
        if member is not None and member.rooms.get(room.folded) is room:
            self.chat._remove(member, room)

    def _room_events(
        self,
        name: str,
        items: list[Any],
        own: bool,
        kept: list[bytes] | None = None,
    ) -> None:
        """
        Apply a room's events and share them with its members here, in
        order: who enters sees what follows, who leaves what went before.
        This node's own members' comings and goings were done here already.
        C{kept}: the items are this node's own, as they were published,
        and these the records the chat made of the lines said among them.
        """
        chat = self.chat
        share = chat.fanout.share
        folded = names.fold(name)
        room = chat.rooms.get(folded)
        pending: list[tuple[Member | None, Event]] = []
        records: list[bytes] = []
        if kept is None:
            items = codec.decode_room(name, items)
        # Lines said are recorded here, unless the chat's records of them
        # are at hand (kept): then they are counted, to check those.
        said: list[Any] = []
        local = self.local
        ghosts = self.ghosts
        last_sid: object = ()
        sender = None
        for item in items:
            run = type(item) is codec.Run
            sid = item.sid if run else item[0]
            if sid != last_sid:
                # A sender's lines come together: its member is looked up
                # once for them.
                last_sid = sid
                sender = None if sid is None else local.get(sid) or ghosts.get(sid)
            if run:
                # The bulk of a busy room: lines said, a sender's at a time.
                pending += [(sender, event) for event in item.events()]
                of_kind, nick = _SPOKEN[item.kind], item.nick
                records += [encode_record(of_kind, nick, text) for text in item.texts]
                continue
            event: Any = item[1]
            kind = type(event)
            spoken = _SPOKEN.get(kind)
            if spoken is not None:
                pending.append((sender, event))
                if kept is None:
                    records.append(encode_record(spoken, event.nick, event.text))
                else:
                    said.append(event)
                continue
            if kind not in _MEMBERSHIP:
                if room is not None:
                    self._set(room, event, own)
                pending.append((sender, event))
                continue
            if kind is events.Joined:
                target = sender
            elif kind in _DEPARTURES and sid is not None and not own:
                # Who left is known by session: a member this node no
                # longer has is old news (a lost node's users, whom the
                # others saw quit already), and its name may be someone
                # else's by now.
                if sender is None:
                    continue
                target = sender
            else:
                target = chat.members.get(names.fold(event.nick))
            done_here = own and target is not None and not target.remote
            if kind is events.Kicked:
                # The one kicked is told too.
                pending.append((None, event))
            if room is not None and pending:
                share(room, pending)
                pending = []
            if kind is events.Joined:
                room = self._room(name)
                if target is not None and not done_here:
                    self._enter(target, room, len(item) > 2 and bool(item[2]))
                pending.append((sender, event))
                continue
            if room is not None and not done_here:
                self._leave(target, room)
            room = chat.rooms.get(folded)
            if kind is not events.Kicked:
                pending.append((None, event))
        if room is not None and pending:
            share(room, pending)
        if said and chat.history is not None:
            assert kept is not None
            records = kept
            if len(kept) != len(said):
                # Not the chat's records of these lines (a line the log could
                # not carry was left out): made again.
                records = [
                    encode_record(_SPOKEN[type(e)], e.nick, e.text) for e in said
                ]
        if records and chat.history is not None:
            chat.history.record(folded, name, records, store=own)

    def _set(self, room: Room, event: Event, own: bool) -> None:
        """Make C{room} as C{event} says it now is."""
        chat = self.chat
        kind = type(event)
        if kind is events.TopicSet:
            assert isinstance(event, events.TopicSet)
            topic = events.Topic(room.name, event.text, event.nick, chat.clock())
            if not own or room.topic is None or room.topic.text != event.text:
                room.topic = topic if event.text else None
                if chat.history is not None:
                    chat.history.set_topic(room.folded, topic, store=False)
        elif kind is events.SettingChanged:
            assert isinstance(event, events.SettingChanged)
            setattr(room, event.setting, event.value)
            room.regag()
            chat._keep(room)
        elif kind is events.MaskAdded:
            assert isinstance(event, events.MaskAdded)
            entries = room.bans if event.kind == "ban" else room.quiets
            entries[event.entry.mask] = (Mask(event.entry.mask), event.entry)
            if event.kind == "quiet":
                room.regag()
                for each in room.members:
                    chat._silence(each, room)
            chat._keep(room)
        elif kind is events.MaskRemoved:
            assert isinstance(event, events.MaskRemoved)
            entries = room.bans if event.kind == "ban" else room.quiets
            entries.pop(event.mask, None)
            if event.kind == "quiet":
                room.regag()
                for each in list(room.silenced):
                    chat._silence(each, room)
            chat._keep(room)
        elif kind in _STATUS:
            which, give = _STATUS[kind]
            target = chat.members.get(names.fold(event.nick))  # type: ignore[attr-defined]
            if target is not None and target in room.members:
                holders: set[Member] = getattr(room, which)
                if give:
                    holders.add(target)
                else:
                    holders.discard(target)
                if which == "operators":
                    chat._operator_changed(room, target, give)
        elif kind is events.RoomRegistered:
            assert isinstance(event, events.RoomRegistered)
            room.founder = event.founder
            if event.founder is None:
                room.op_accounts.clear()
                chat.room_records.pop(room.folded, None)
            else:
                room.op_accounts.add(event.founder)
                chat._keep(room)

    def _present(self, sid: str, name: str, operator: bool, voiced: bool) -> None:
        ghost = self.ghosts.get(sid)
        if ghost is None:
            return
        room = self._room(name)
        self._enter(ghost, room, operator)
        if voiced:
            room.voiced.add(ghost)

    def _room_state(self, name: str, state: dict[str, Any]) -> None:
        room = self._room(name)
        topic = state.get("topic")
        decoded = None if topic is None else codec.decode_event(topic)
        room.topic = decoded if isinstance(decoded, events.Topic) else None
        for setting, value in state["settings"].items():
            setattr(room, setting, value)
        room.founder = state.get("founder")
        for kind, entries in (("bans", room.bans), ("quiets", room.quiets)):
            listed = codec.decode_event(state[kind])
            assert isinstance(listed, events.MaskList)
            for ban in listed.entries:
                entries[ban.mask] = (Mask(ban.mask), ban)
        room.regag()
        if room.quiets:
            for each in room.members:
                self.chat._silence(each, room)

    def _answer_hello(self) -> None:
        """Another node started: tell it what this node holds."""
        rooms: dict[str, Room] = {}
        for sid, member in self.local.items():
            self._send(self._member_entry(sid, member))
            for room in member.rooms.values():
                rooms[room.folded] = room
                self._send(
                    [
                        "p",
                        sid,
                        room.name,
                        member in room.operators,
                        member in room.voiced,
                    ]
                )
        for room in rooms.values():
            self._send(["s", room.name, self._state_of(room)])

    def _state_of(self, room: Room) -> dict[str, Any]:
        return {
            "topic": None if room.topic is None else codec.encode_event(room.topic),
            "settings": {
                "invite_only": room.invite_only,
                "key": room.key,
                "limit": room.limit,
                "moderated": room.moderated,
                "no_external": room.no_external,
                "secret": room.secret,
                "topic_locked": room.topic_locked,
            },
            "founder": room.founder,
            "bans": codec.encode_event(
                events.MaskList(
                    room.name, "ban", tuple(ban for _, ban in room.bans.values())
                )
            ),
            "quiets": codec.encode_event(
                events.MaskList(
                    room.name, "quiet", tuple(ban for _, ban in room.quiets.values())
                )
            ),
        }

    def _node_lost(self, node: str, reason: str) -> None:
        if node == self.node:
            if self._stopping:
                return
            log.error("The cluster counted this node as lost: dropping its users")
            with self._not_applying():
                self._drop_everyone(reason)
            return
        for sid, ghost in list(self.ghosts.items()):
            if ghost.session.node == node:  # type: ignore[attr-defined]
                self.chat.disconnect(ghost, reason)
                self.ghosts.pop(sid, None)

    @contextmanager
    def _not_applying(self) -> Iterator[None]:
        fanout = self.chat.fanout
        was, fanout.applying = fanout.applying, False
        try:
            yield
        finally:
            fanout.applying = was

    def _drop_everyone(self, reason: str) -> None:
        for member in list(self.local.values()):
            self._claimed.pop(member, None)
            self.chat.dismiss(member, events.Killed(self.node, reason), reason)
