"""
What the chat core says happened: typed records that every front end renders
in its own way.

The core never writes a sentence for a user. It emits these events and each
front end's renderer (L{chatservice.core.session.Renderer}) turns them into
its own bytes: a line for C{nc}, a numeric for IRC, a JSON object for a
browser. Events are frozen and slotted: they are shared, unchanged, by every
recipient and every renderer, and one is made for each line said, so they
must be small and cheap.

Room events go to the members of a room; the others are replies or notices
to one member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING, dataclass, fields
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from chatservice.core.audit import AuditEntry
    from chatservice.core.errors import ChatError
    from chatservice.core.server_bans import ServerBan


class Event:
    """
    Something to tell one or more members. Front ends may define events of
    their own (a line front end's help text, say) for their own renderer.
    """

    __slots__ = ()


class RoomEvent(Event):
    """Something that happened in C{room}, told to its members."""

    __slots__ = ()
    room: str


# Room events: what the members of a room see.


@dataclass(frozen=True, slots=True)
class Said(RoomEvent):
    """
    C{nick} said C{text} in C{room}. C{tags} are what the sender's client
    attached to the message for other clients (IRCv3's client-only tags,
    C{+name=value;...}, escaped as IRC escapes them): front ends that carry
    such annotations pass them on, the others ignore them.
    """

    room: str
    nick: str
    text: str
    tags: str = ""


@dataclass(frozen=True, slots=True)
class Acted(RoomEvent):
    """C{nick} described an action (C{/me}, CTCP ACTION) in C{room}."""

    room: str
    nick: str
    text: str
    tags: str = ""


@dataclass(frozen=True, slots=True)
class Noticed(RoomEvent):
    """
    C{nick} sent a notice to C{room}: said, but not to be answered by
    machines (IRC's C{NOTICE}).
    """

    room: str
    nick: str
    text: str
    tags: str = ""


@dataclass(frozen=True, slots=True)
class Joined(RoomEvent):
    room: str
    nick: str


@dataclass(frozen=True, slots=True)
class Left(RoomEvent):
    """C{nick} left C{room}, saying C{reason} (empty: nothing)."""

    room: str
    nick: str
    reason: str


@dataclass(frozen=True, slots=True)
class Quit(RoomEvent):
    """C{nick} left the chat altogether, for C{reason}."""

    room: str
    nick: str
    reason: str


@dataclass(frozen=True, slots=True)
class Renamed(RoomEvent):
    room: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class TopicSet(RoomEvent):
    """
    C{nick} set the topic of C{room} to C{text}; an empty C{text} cleared
    it. The setter is told too: it is the confirmation.
    """

    room: str
    nick: str
    text: str


@dataclass(frozen=True, slots=True)
class Kicked(RoomEvent):
    """
    C{by} put C{nick} out of C{room}, giving C{reason} (empty: none given;
    each front end says what it shows then). Told to the room with C{nick}
    still in it, so that the one kicked sees its own kick.
    """

    room: str
    nick: str
    by: str
    reason: str


@dataclass(frozen=True, slots=True)
class Opped(RoomEvent):
    """C{by} made C{nick} an operator of C{room}."""

    room: str
    nick: str
    by: str


@dataclass(frozen=True, slots=True)
class Deopped(RoomEvent):
    """C{by} took operator status in C{room} from C{nick}."""

    room: str
    nick: str
    by: str


@dataclass(frozen=True, slots=True)
class Voiced(RoomEvent):
    """C{by} gave C{nick} a voice in C{room}: IRC's C{+v}, a mark by its name."""

    room: str
    nick: str
    by: str


@dataclass(frozen=True, slots=True)
class Devoiced(RoomEvent):
    """C{by} took C{nick}'s voice in C{room}."""

    room: str
    nick: str
    by: str


# What a room's settings may be: their names, as every front end spells
# them (IRC maps each to a channel mode letter).
Setting = Literal[
    "invite_only", "key", "limit", "moderated", "no_external", "secret", "topic_locked"
]
# The lists of masks a room keeps: who may not enter, who may not speak.
MaskKind = Literal["ban", "quiet"]


@dataclass(frozen=True, slots=True)
class SettingChanged(RoomEvent):
    """
    C{nick} changed the setting C{setting} of C{room} to C{value}: a flag
    (C{invite_only}, C{moderated}, C{no_external}, C{secret},
    C{topic_locked}) on or off, the C{key} (None: no key) or the member
    C{limit} (None: no limit). Told only of a change.
    """

    room: str
    nick: str
    setting: Setting
    value: bool | int | str | None


@dataclass(frozen=True, slots=True)
class Ban:
    """
    One entry of a room's (or the server's) list of masks: C{mask}, in its
    canonical spelling (L{chatservice.core.masks}), set by C{by} at C{at},
    until C{expires} (None: until removed), for C{reason} (may be empty).
    """

    mask: str
    by: str
    at: float
    expires: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class MaskAdded(RoomEvent):
    """
    C{nick} added C{entry} to the C{kind} list of C{room}: a ban (whoever
    matches cannot enter, and is put out) or a quiet (a mute: cannot
    speak).
    """

    room: str
    nick: str
    kind: MaskKind
    entry: Ban


@dataclass(frozen=True, slots=True)
class MaskRemoved(RoomEvent):
    """C{nick} took C{mask} off the C{kind} list of C{room}."""

    room: str
    nick: str
    kind: MaskKind
    mask: str


@dataclass(frozen=True, slots=True)
class RoomRegistered(RoomEvent):
    """
    C{nick} registered C{room} to the account C{founder} (None: C{nick}
    unregistered it): its settings, lists and operators are kept, and
    survive the room emptying and the server restarting.
    """

    room: str
    nick: str
    founder: str | None


# Replies and notices: what one member is told.


@dataclass(frozen=True, slots=True)
class Private(Event):
    """
    A private message from C{sender} to the member told; a notice (IRC's
    C{NOTICE}) if C{notice}; C{tags} as L{Said}'s.
    """

    sender: str
    text: str
    notice: bool = False
    tags: str = ""


@dataclass(frozen=True, slots=True)
class Welcome(Event):
    """
    The first thing a newcomer is told: its nickname, and the room a front
    end put it in, if any.
    """

    nick: str
    room: str | None


@dataclass(frozen=True, slots=True)
class Motd(Event):
    """The operator's message of the day, as lines of text."""

    lines: Sequence[str]


@dataclass(frozen=True, slots=True)
class Entered(Event):
    """The member told has entered C{room}, which now has C{count} members."""

    room: str
    count: int


@dataclass(frozen=True, slots=True)
class Topic(Event):
    """
    The topic of C{room}: C{text}, set by C{nick} at C{time} (seconds since
    the epoch). Told on entering a room that has one (after L{Entered},
    before the L{Replay}) and on asking for it. The same record is what the
    history keeps of a room's topic.
    """

    room: str
    text: str
    nick: str
    time: float


@dataclass(frozen=True, slots=True)
class NoTopic(Event):
    """The member asked for the topic of C{room}, which has none."""

    room: str


@dataclass(frozen=True, slots=True)
class OperatorUnchanged(Event):
    """
    The member asked to give (C{operator} true) or take operator status of
    C{room} to or from C{nick}, who already has (or lacks) it: nothing was
    done, and the room is not told.
    """

    room: str
    nick: str
    operator: bool


@dataclass(frozen=True, slots=True)
class MaskList(Event):
    """
    The C{kind} list of C{room}, oldest first (expired entries gone): what
    the member asked to see.
    """

    room: str
    kind: MaskKind
    entries: Sequence[Ban]


@dataclass(frozen=True, slots=True)
class Invited(Event):
    """C{by} invited the member told into C{room}."""

    room: str
    by: str


@dataclass(frozen=True, slots=True)
class InviteSent(Event):
    """The member's invitation of C{nick} into C{room} was delivered."""

    room: str
    nick: str


@dataclass(frozen=True, slots=True)
class RoomSettings(Event):
    """
    The settings of C{room}, as the member asked (or entering showed
    them): its flags, its C{key} (None: none, or the member may not see
    it) and member C{limit} (None: none), and the account of its
    C{founder} (None: not registered).
    """

    room: str
    invite_only: bool
    key: str | None
    limit: int | None
    moderated: bool
    no_external: bool
    secret: bool
    topic_locked: bool
    founder: str | None
    created: float


@dataclass(frozen=True, slots=True)
class HistoryLine:
    """One stored line of a room, as replayed."""

    time: float
    kind: Literal["message", "action"]
    nick: str
    text: str


@dataclass(frozen=True, slots=True)
class Replay(Event):
    """
    The last lines said in C{room}, oldest first, never empty; or a page of
    older ones (L{chatservice.core.chat.Chat.history_page}). C{before} is
    the cursor of the lines before these, None if there are none.
    """

    room: str
    lines: Sequence[HistoryLine]
    before: str | None = None


@dataclass(frozen=True, slots=True)
class Names(Event):
    """
    Who is in C{room}, in the order they entered it, which of them are its
    operators, which have a voice, and whether the room is secret.
    """

    room: str
    nicks: Sequence[str]
    operators: frozenset[str] = frozenset()
    voiced: frozenset[str] = frozenset()
    secret: bool = False


@dataclass(frozen=True, slots=True)
class RoomList(Event):
    """Every room with its member count, largest first, then by name."""

    rooms: Sequence[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class NickChanged(Event):
    """The member told is now called C{nick}; it was called C{old}."""

    nick: str
    old: str


@dataclass(frozen=True, slots=True)
class SameNick(Event):
    """The member asked for the nickname it has already."""

    nick: str


@dataclass(frozen=True, slots=True)
class Displaced(Event):
    """
    The owner of the registered C{nick} logged in elsewhere, so the member
    told, which held that name, is being given another.
    """

    nick: str


@dataclass(frozen=True, slots=True)
class Registered(Event):
    """C{nick} is now registered to the member told, who is logged in."""

    nick: str


@dataclass(frozen=True, slots=True)
class LoggedIn(Event):
    nick: str


@dataclass(frozen=True, slots=True)
class LoggedOut(Event):
    pass


@dataclass(frozen=True, slots=True)
class ServerOperatorUp(Event):
    """The member told is now a server operator."""


@dataclass(frozen=True, slots=True)
class ServerOperatorDown(Event):
    """The member told is no longer a server operator."""


@dataclass(frozen=True, slots=True)
class Killed(Event):
    """
    The server operator C{by} disconnected the member told, for C{reason}:
    the last thing it is told.
    """

    by: str
    reason: str


@dataclass(frozen=True, slots=True)
class KillDone(Event):
    """The member told (a server operator) disconnected C{nick}."""

    nick: str
    reason: str


@dataclass(frozen=True, slots=True)
class ServerNotice(Event):
    """
    The server operator C{by} says C{text} to everyone connected: told to
    every member, rendered once per kind of front end.
    """

    by: str
    text: str


@dataclass(frozen=True, slots=True)
class ServerBanAdded(Event):
    """
    The member told set the server ban C{entry}; C{removed} members were
    disconnected by it.
    """

    entry: ServerBan
    removed: int


@dataclass(frozen=True, slots=True)
class ServerBanRemoved(Event):
    """The member told lifted the server ban on C{mask}."""

    mask: str


@dataclass(frozen=True, slots=True)
class ServerBanList(Event):
    """
    The server bans in force, oldest first: C{entries}, the first of
    C{total} (a listing is bounded).
    """

    entries: Sequence[ServerBan]
    total: int


@dataclass(frozen=True, slots=True)
class AuditLog(Event):
    """The newest entries of the audit log, oldest first."""

    entries: Sequence[AuditEntry]


@dataclass(frozen=True, slots=True)
class PasswordChanged(Event):
    pass


@dataclass(frozen=True, slots=True)
class Goodbye(Event):
    """The member's own quit was carried out: the last thing it is told."""


@dataclass(frozen=True, slots=True)
class Closing(Event):
    """The server is shutting down: the last thing everyone is told."""


@dataclass(frozen=True, slots=True)
class Refused(Event):
    """A request of the member told was refused, for the reason C{error}."""

    error: ChatError


def _quick_init(cls: type) -> None:
    """
    Give the frozen dataclass C{cls} an C{__init__} that fills its slots
    through their descriptors. The one C{dataclass} writes goes through
    C{object.__setattr__} once a field, to get past the frozen
    C{__setattr__}; this costs about a third less, and an event is made for
    every line said. Instances are as frozen as before.
    """
    names = [field.name for field in fields(cls)]
    # Fields with a default (only strings) keep it.
    params = [
        name if field.default is MISSING else f"{name}={field.default!r}"
        for name, field in zip(names, fields(cls), strict=True)
    ]
    setters = {f"_set_{name}": cls.__dict__[name].__set__ for name in names}
    source = f"def __init__(self, {', '.join(params)}):\n" + "".join(
        f"    _set_{name}(self, {name})\n" for name in names
    )
    exec(source, setters)
    cls.__init__ = setters["__init__"]  # type: ignore[misc]


for _cls in (Said, Acted, Noticed, Joined, Left, Quit, Renamed):
    _quick_init(_cls)
