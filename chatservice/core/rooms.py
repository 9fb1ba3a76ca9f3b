"""
Members and rooms: the state the chat core keeps of who is where.

Plain records with slots; the rules live in L{chatservice.core.chat} and
delivery in L{chatservice.core.fanout}.
"""

from __future__ import annotations

from chatservice.core import names
from chatservice.core.events import Ban, Event, Topic
from chatservice.core.masks import MaskList
from chatservice.core.session import Renderer, Session


class Member:
    """
    One connected user.

    Members compare by identity: two connections are two members even if
    one later takes the other's old nickname.

    @ivar folded: the nickname's key (L{names.fold}), unique among members.
    @ivar account: the folded name of the account it is logged in as.
    @ivar outbox: rendered output queued for it this turn.
    @ivar remote: it is connected to another process of the chat (see
        L{chatservice.cluster}): this one keeps it for names, listings and
        rules, renders nothing for it, and hands what is told it to the
        cluster.
    """

    __slots__ = (
        "__weakref__",
        "account",
        "address",
        "connected",
        "folded",
        "nick",
        "outbox",
        "remote",
        "renderer",
        "rooms",
        "session",
    )

    def __init__(self, nick: str, session: Session) -> None:
        self.nick = nick
        self.folded = names.fold(nick)
        self.session = session
        self.renderer: Renderer = session.renderer
        # Rooms the member is in, by key, in the order it joined them.
        self.rooms: dict[str, Room] = {}
        self.outbox: list[bytes] = []
        self.connected = True
        self.account: str | None = None
        # The peer's IP address, if its session knows it: what address
        # masks match.
        self.address: str = getattr(session, "address", "")
        self.remote: bool = getattr(session, "remote", False)

    def __repr__(self) -> str:
        return f"<Member {self.nick!r}>"


class Room:
    """
    A named set of members. A room exists while it has members.

    @ivar members: an insertion-ordered set: who entered first is listed
        (and served) first.
    @ivar by_renderer: the same members grouped by their renderer, so that
        fan-out renders each event once per kind of front end without a
        look-up per member.
    @ivar pending: events this turn, with who caused them (None: the
        server), not yet rendered.
    @ivar to_record: of those, the history records to keep.
    @ivar operators: the members who may set the topic, kick, and give or
        take operator status: whoever entered the room empty, and whom an
        operator made one. Status belongs to the membership: leaving drops
        it, a new nickname keeps it. A room whose operators all left has
        none until it is empty and made anew.
    @ivar voiced: members given a voice (IRC's C{+v}) by an operator: a
        mark by their names, held per membership as operator status is.
    @ivar secret: the room is left out of listings, and its members are
        shown only to each other (IRC's C{+s}).
    @ivar created: when the room was made, by the chat's clock.
    @ivar topic: the room's topic, if it has one.
    @ivar topic_locked: only operators may set the topic (IRC's C{+t}, on
        by default).
    @ivar invite_only: only whom an operator invited may enter (C{+i}).
    @ivar key: the word one must give to enter (C{+k}), if any.
    @ivar limit: the most members the room takes (C{+l}), if any.
    @ivar no_external: only members may speak to it (C{+n}, on by default).
    @ivar moderated: only operators and voiced members speak (C{+m}).
    @ivar bans: who may not enter, by canonical mask (C{+b}).
    @ivar quiets: who may not speak, by canonical mask (a mute, C{+q}).
    @ivar silenced: the members a quiet matches, with when the latest such
        quiet ends (None: never); kept up to date as quiets, nicknames and
        accounts change, so that speaking costs a look-up, not a match.
    @ivar gagged: the room is moderated or has quiets: speaking in it is
        checked at all. The one test the busiest path pays.
    @ivar invited: folded nicknames and accounts invited in, each used up
        on entering.
    @ivar founder: the account the room is registered to, if it is.
    @ivar op_accounts: accounts a registered room makes operators on
        entering, whatever their nickname.
    """

    __slots__ = (
        "bans",
        "by_renderer",
        "created",
        "folded",
        "founder",
        "gagged",
        "invite_only",
        "invited",
        "key",
        "limit",
        "members",
        "moderated",
        "name",
        "no_external",
        "op_accounts",
        "operators",
        "pending",
        "quiets",
        "secret",
        "silenced",
        "to_record",
        "topic",
        "topic_locked",
        "voiced",
    )

    def __init__(self, name: str, created: float = 0.0) -> None:
        self.name = name
        self.created = created
        self.folded = names.fold(name)
        self.members: dict[Member, None] = {}
        self.by_renderer: dict[Renderer, dict[Member, None]] = {}
        self.pending: list[tuple[Member | None, Event]] = []
        self.to_record: list[bytes] = []
        self.operators: set[Member] = set()
        self.voiced: set[Member] = set()
        self.topic: Topic | None = None
        self.topic_locked = True
        self.secret = False
        self.invite_only = False
        self.key: str | None = None
        self.limit: int | None = None
        self.no_external = True
        self.moderated = False
        self.bans: MaskList[Ban] = MaskList()
        self.quiets: MaskList[Ban] = MaskList()
        self.silenced: dict[Member, float | None] = {}
        self.gagged = False
        self.invited: set[str] = set()
        self.founder: str | None = None
        self.op_accounts: set[str] = set()

    def add(self, member: Member) -> None:
        self.members[member] = None
        if member.remote:
            return
        group = self.by_renderer.get(member.renderer)
        if group is None:
            group = self.by_renderer[member.renderer] = {}
        group[member] = None

    def remove(self, member: Member) -> None:
        del self.members[member]
        self.operators.discard(member)
        self.voiced.discard(member)
        self.silenced.pop(member, None)
        if not member.remote:
            self._ungroup(member, member.renderer)

    def regroup(self, member: Member, old: Renderer) -> None:
        """
        C{member}, in this room, renders with C{member.renderer} now and no
        longer with C{old}: move it to its new group, keeping everything
        else of its membership.
        """
        if member.remote:
            return
        self._ungroup(member, old)
        group = self.by_renderer.get(member.renderer)
        if group is None:
            group = self.by_renderer[member.renderer] = {}
        group[member] = None

    def _ungroup(self, member: Member, renderer: Renderer) -> None:
        group = self.by_renderer[renderer]
        del group[member]
        if not group:
            del self.by_renderer[renderer]

    def __repr__(self) -> str:
        return f"<Room {self.name!r} ({len(self.members)} members)>"

    def regag(self) -> None:
        """Work out L{gagged} again, after a setting or quiet changed."""
        self.gagged = self.moderated or bool(self.quiets)

    def visible_to(self, member: Member) -> bool:
        """
        Whether C{member} may see the room in listings and who is in it.
        """
        return not self.secret or member.rooms.get(self.folded) is self
