"""
Why a request is refused: typed errors that carry what a front end needs to
say so in its own words.

Like Synapse's error codes, each error is data, not a sentence: the line
front end writes C{!!! The nickname bob is taken.}, an IRC front end sends
numeric 433, a web client gets C{{"type": "error", "code": "nick_taken"}}.
Each class has a C{code}, a short stable name for machine clients.

The core raises these from its operations; front ends raise the ones at the
end of this module for the limits they enforce on a connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal


class ChatError(Exception):
    """
    A request that is refused. The subclass says why; its fields say what
    about.
    """

    code: ClassVar[str] = "refused"


# Names


@dataclass(eq=False)
class InvalidName(ChatError):
    """
    C{name} breaks the naming rules; C{reason} is the rule, as
    L{chatservice.core.names} states it.
    """

    code = "invalid_name"
    what: Literal["nickname", "room"]
    name: str
    reason: str


@dataclass(eq=False)
class NickTaken(ChatError):
    code = "nick_taken"
    nick: str


@dataclass(eq=False)
class NickRegistered(ChatError):
    """C{nick} belongs to an account the member is not logged in as."""

    code = "nick_registered"
    nick: str


@dataclass(eq=False)
class NoSuchNick(ChatError):
    code = "no_such_nick"
    nick: str


# Rooms


@dataclass(eq=False)
class NoSuchRoom(ChatError):
    code = "no_such_room"
    room: str


@dataclass(eq=False)
class NotInRoom(ChatError):
    code = "not_in_room"
    room: str


@dataclass(eq=False)
class NotOperator(ChatError):
    """The request needs operator status in C{room}, which the member lacks."""

    code = "not_operator"
    room: str


@dataclass(eq=False)
class TargetNotInRoom(ChatError):
    """C{nick}, whom the request is about, is not in C{room}."""

    code = "target_not_in_room"
    room: str
    nick: str


@dataclass(eq=False)
class TopicTooLong(ChatError):
    """A topic is at most C{limit} characters."""

    code = "topic_too_long"
    limit: int


@dataclass(eq=False)
class NoRoom(ChatError):
    """The member is in no room, and the request needs one."""

    code = "no_room"


@dataclass(eq=False)
class NoHistory(ChatError):
    """This server keeps no history."""

    code = "no_history"


@dataclass(eq=False)
class BadCursor(ChatError):
    """
    C{cursor} is not a place in the history of the room asked about: not
    one the server handed out, one of another room, or one of a run of
    the server before a restart.
    """

    code = "bad_cursor"
    cursor: str


# Moderation


@dataclass(eq=False)
class Banned(ChatError):
    """The member is banned from C{room}, for C{reason} (may be empty)."""

    code = "banned"
    room: str
    reason: str


@dataclass(eq=False)
class InviteOnly(ChatError):
    """C{room} is entered by invitation only, and the member has none."""

    code = "invite_only"
    room: str


@dataclass(eq=False)
class BadKey(ChatError):
    """C{room} has a key, and the member did not give it."""

    code = "bad_key"
    room: str


@dataclass(eq=False)
class RoomFull(ChatError):
    """C{room} has as many members as its limit allows."""

    code = "room_full"
    room: str


@dataclass(eq=False)
class CannotSpeak(ChatError):
    """
    The member may not speak in C{room}: C{why} is C{moderated} (only
    operators and voiced members speak), C{muted} (a quiet matches it) or
    C{banned} (it speaks from outside the room, which bans it).
    """

    code = "cannot_speak"
    room: str
    why: Literal["moderated", "muted", "banned"]


@dataclass(eq=False)
class BadMask(ChatError):
    """C{mask} is not a mask: C{reason} says why."""

    code = "bad_mask"
    mask: str
    reason: str


@dataclass(eq=False)
class BadSetting(ChatError):
    """C{value} is not a value the room setting C{setting} takes."""

    code = "bad_setting"
    setting: str
    value: str


@dataclass(eq=False)
class BadDuration(ChatError):
    """
    C{duration} is not a duration a ban or mute may last: a number of
    seconds, minutes, hours or days (C{30s}, C{10m}, C{2h}, C{7d}), more
    than none and at most ten years, or C{forever}.
    """

    code = "bad_duration"
    duration: str


@dataclass(eq=False)
class ListFull(ChatError):
    """The C{kind} list of C{room} holds C{limit} entries, its most."""

    code = "list_full"
    room: str
    kind: str
    limit: int


@dataclass(eq=False)
class NoSuchMask(ChatError):
    """C{mask} is not on the C{kind} list of C{room}."""

    code = "no_such_mask"
    room: str
    kind: str
    mask: str


@dataclass(eq=False)
class AlreadyInRoom(ChatError):
    """C{nick}, invited into C{room}, is in it already."""

    code = "already_in_room"
    room: str
    nick: str


@dataclass(eq=False)
class BannedNick(ChatError):
    """
    The nickname C{nick} is banned in C{room}, which the member is in: it
    may not take it there.
    """

    code = "banned_nick"
    room: str
    nick: str


@dataclass(eq=False)
class RoomNotRegistered(ChatError):
    code = "room_not_registered"
    room: str


@dataclass(eq=False)
class RoomAlreadyRegistered(ChatError):
    """C{room} is registered to C{founder} already."""

    code = "room_already_registered"
    room: str
    founder: str


@dataclass(eq=False)
class NotFounder(ChatError):
    """Only the founder of C{room} (or a server operator) may do that."""

    code = "not_founder"
    room: str


# Accounts


@dataclass(eq=False)
class NoAccounts(ChatError):
    """This server keeps no accounts."""

    code = "no_accounts"


@dataclass(eq=False)
class BadPassword(ChatError):
    """A new password breaks the length rule."""

    code = "bad_password"
    shortest: int
    longest: int


@dataclass(eq=False)
class AlreadyRegistered(ChatError):
    code = "already_registered"
    nick: str


@dataclass(eq=False)
class RegisteredMeanwhile(ChatError):
    """Someone else registered C{nick} while the password was hashed."""

    code = "registered_meanwhile"
    nick: str


@dataclass(eq=False)
class GuestNick(ChatError):
    """Guest nicknames cannot be registered."""

    code = "guest_nick"


@dataclass(eq=False)
class NotRegistered(ChatError):
    code = "not_registered"
    nick: str


@dataclass(eq=False)
class AlreadyLoggedIn(ChatError):
    code = "already_logged_in"
    nick: str


@dataclass(eq=False)
class WrongPassword(ChatError):
    """
    The password given for C{nick} is wrong; C{nick} is None when it was
    the old password of a change, which is then left as it was.
    """

    code = "wrong_password"
    nick: str | None


@dataclass(eq=False)
class NotLoggedIn(ChatError):
    """
    The request needs a logged-in member; C{to} says what for (C{"logout"}
    or C{"password"}).
    """

    code = "not_logged_in"
    to: Literal["logout", "password", "register_room"]


@dataclass(eq=False)
class TooManyFailures(ChatError):
    """Too many failed logins: try again in C{wait} seconds."""

    code = "too_many_failures"
    wait: int


@dataclass(eq=False)
class Busy(ChatError):
    """The member's last account command is still being worked on."""

    code = "busy"


@dataclass(eq=False)
class NotSaved(ChatError):
    """Storing an account failed; C{what} was not done."""

    code = "not_saved"
    what: Literal["register", "password"]


@dataclass(eq=False)
class StoreUnavailable(ChatError):
    """
    The accounts could not be read from the database (a PostgreSQL that
    several servers share, and that is down), so C{what} was not done; the
    chat goes on meanwhile.
    """

    code = "store_unavailable"
    what: Literal["login", "register", "password"]


# Server operators


@dataclass(eq=False)
class NotServerOperator(ChatError):
    """
    C{name} is not an account the server's configuration names as a server
    operator (or no such account exists): IRC's "no O-lines".
    """

    code = "not_server_operator"
    name: str


@dataclass(eq=False)
class NoPrivileges(ChatError):
    """
    The request is a server operator's, and the member is not one (IRC's
    481 ERR_NOPRIVILEGES).
    """

    code = "no_privileges"


@dataclass(eq=False)
class NoText(ChatError):
    """The request needs text, and none was given (or none was left once made safe)."""

    code = "no_text"


@dataclass(eq=False)
class ServerBanned(ChatError):
    """
    A server ban matches the connection's address or the member's account:
    it is refused, or disconnected, for C{reason}.
    """

    code = "server_banned"
    reason: str


@dataclass(eq=False)
class NoSuchServerBan(ChatError):
    code = "no_such_server_ban"
    mask: str


@dataclass(eq=False)
class ServerBansFull(ChatError):
    """The server ban list holds C{limit} entries, its most."""

    code = "server_bans_full"
    limit: int


@dataclass(eq=False)
class Failed(ChatError):
    """Something went wrong that is not the member's doing."""

    code = "failed"


# Limits a front end enforces on a connection


@dataclass(eq=False)
class LineTooLong(ChatError):
    code = "line_too_long"
    limit: int


@dataclass(eq=False)
class ExcessFlood(ChatError):
    """More than C{queue} lines were held at C{rate} lines a second."""

    code = "excess_flood"
    queue: int
    rate: float


@dataclass(eq=False)
class IdleTimeout(ChatError):
    code = "idle_timeout"
    seconds: float


@dataclass(eq=False)
class PlainPort(ChatError):
    """A TLS handshake came to a port that speaks plain text."""

    code = "plain_port"


@dataclass(eq=False)
class ServerFull(ChatError):
    code = "server_full"
    limit: int


@dataclass(eq=False)
class TooManyFromAddress(ChatError):
    code = "too_many_from_address"
    limit: int
