"""
The line protocol's renderer: every line the server sends to C{nc}, telnet
and C{chat-client}, in one place.

C{docs/protocol.md} documents exactly these shapes; keep the two in step.
The module-level functions build the text of each kind of line (the
client's parser is tested against them); L{LineRenderer} turns the core's
events (L{chatservice.core.events}) and typed errors
(L{chatservice.core.errors}) into those lines, encoded once: a line fanned
out to a thousand members is rendered a single time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from chatservice.core import errors, events
from chatservice.core.audit import AuditEntry
from chatservice.core.errors import ChatError
from chatservice.core.events import Event
from chatservice.core.moderation import KEY_MAX, LIMIT_MAX
from chatservice.core.server_bans import ServerBan

NEWLINE = b"\r\n"
# Names /who shows before it says how many more there are.
WHO_LIMIT = 200


def encode(line: str) -> bytes:
    """
    The bytes of one outgoing line: UTF-8 with the CRLF every terminal and
    telnet expects.
    """
    return line.encode("utf-8") + NEWLINE


def notice(text: str) -> str:
    """A reply or announcement from the server to one client."""
    return f"*** {text}"


def error(text: str) -> str:
    """A refusal: the request was not carried out."""
    return f"!!! {text}"


def message(room: str, nick: str, text: str) -> str:
    """A chat line said in C{room}."""
    return f"[{room}] <{nick}> {text}"


def action(room: str, nick: str, text: str) -> str:
    """A C{/me} action in C{room}."""
    return f"[{room}] * {nick} {text}"


def joined(room: str, nick: str) -> str:
    return f"[{room}] --> {nick} joined"


def left(room: str, nick: str) -> str:
    return f"[{room}] <-- {nick} left"


def quit(room: str, nick: str, reason: str) -> str:
    return f"[{room}] <-- {nick} quit ({reason})"


def renamed(room: str, old: str, new: str) -> str:
    return f"[{room}] --- {old} is now known as {new}"


def topic_set(room: str, nick: str, text: str) -> str:
    if not text:
        return f"[{room}] --- {nick} cleared the topic"
    return f"[{room}] --- {nick} set the topic: {text}"


# How each flag of a room reads, on and off.
_FLAG_WORDS = {
    "invite_only": ("made the room invite only", "opened the room to all"),
    "moderated": (
        "made the room moderated: only operators and voices speak",
        "let everyone speak",
    ),
    "no_external": (
        "closed the room to outside messages",
        "opened the room to outside messages",
    ),
    "secret": ("made the room secret", "made the room public"),
    "topic_locked": ("let only operators set the topic", "let anyone set the topic"),
}


def setting_changed(room: str, nick: str, setting: str, value: object) -> str:
    if setting == "key":
        done = "removed the key" if value is None else f"set the key to {value}"
    elif setting == "limit":
        done = (
            "removed the member limit"
            if value is None
            else f"limited the room to {value} members"
        )
    else:
        on, off = _FLAG_WORDS[setting]
        done = on if value else off
    return f"[{room}] --- {nick} {done}"


# What /room set and /room info call each setting of the core's.
SETTING_NAMES: dict[str, str] = {
    "invite_only": "invite",
    "key": "key",
    "limit": "limit",
    "moderated": "moderated",
    "no_external": "external",
    "secret": "secret",
    "topic_locked": "topiclock",
}


def span(seconds: float) -> str:
    """
    A length of time as a moderator would type it: C{10m}, C{2h}, C{7d},
    in the largest unit that says it exactly.
    """
    whole = max(round(seconds), 1)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def until(when: float) -> str:
    """When an expiry falls, to the minute, UTC."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))


# How each list of masks reads: its name, and what an entry does to whom
# it matches.
_MASK_WORDS = {"ban": ("bans", "banned"), "quiet": ("mutes", "muted")}
_LIST_NAMES = {"ban": "ban list", "quiet": "mute list"}


def mask_added(room: str, nick: str, kind: str, entry: events.Ban) -> str:
    """
    C{nick} banned or muted C{entry.mask}: how long (as typed: C{for 10m})
    and why, if it said.
    """
    how_long = "" if entry.expires is None else f" for {span(entry.expires - entry.at)}"
    because = f" ({entry.reason})" if entry.reason else ""
    return f"[{room}] --- {nick} {_MASK_WORDS[kind][1]} {entry.mask}{how_long}{because}"


def mask_removed(room: str, nick: str, kind: str, mask: str) -> str:
    return f"[{room}] --- {nick} un{_MASK_WORDS[kind][1]} {mask}"


def mask_entry(entry: events.Ban) -> str:
    """One entry of a list of masks, as C{/bans} and C{/mutes} show it."""
    how_long = "for ever" if entry.expires is None else f"until {until(entry.expires)}"
    because = f": {entry.reason}" if entry.reason else ""
    return notice(
        f"  {entry.mask} (by {entry.by} at {stamp(entry.at)}, {how_long}){because}"
    )


def _mask_list(e: events.MaskList) -> list[str]:
    name = _MASK_WORDS[e.kind][0]
    if not e.entries:
        return [notice(f"{e.room} has no {name}.")]
    return [
        notice(f"{name.capitalize()} of {e.room} ({len(e.entries)}):"),
        *[mask_entry(entry) for entry in e.entries],
    ]


def _switch(on: bool) -> str:
    return "on" if on else "off"


def room_settings(e: events.RoomSettings) -> str:
    """
    A room's settings, as C{/room info} shows them: each by the name
    C{/room set} takes, so that what is read can be typed back.
    """
    settings = ", ".join(
        [
            f"invite {_switch(e.invite_only)}",
            f"key {'off' if e.key is None else e.key}",
            f"limit {'off' if e.limit is None else e.limit}",
            f"moderated {_switch(e.moderated)}",
            f"secret {_switch(e.secret)}",
            f"topiclock {_switch(e.topic_locked)}",
            f"external {_switch(not e.no_external)}",
        ]
    )
    owner = "not registered" if e.founder is None else f"registered to {e.founder}"
    return notice(
        f"Settings of {e.room}: {settings}; {owner}; created {stamp(e.created)}."
    )


def room_registered(room: str, nick: str, founder: str | None) -> str:
    if founder is None:
        return f"[{room}] --- {nick} unregistered the room"
    return f"[{room}] --- {nick} registered the room to the account {founder}"


def kicked(room: str, nick: str, by: str, reason: str) -> str:
    because = f" ({reason})" if reason else ""
    return f"[{room}] <-- {nick} was kicked by {by}{because}"


def opped(room: str, nick: str, by: str) -> str:
    return f"[{room}] --- {by} made {nick} an operator"


def deopped(room: str, nick: str, by: str) -> str:
    return f"[{room}] --- {by} took operator status from {nick}"


def topic(room: str, text: str, nick: str, when: float) -> str:
    """The topic of C{room}, on entering it or on asking."""
    return notice(f"Topic of {room}: {text} (set by {nick} at {stamp(when)})")


def private(nick: str, text: str) -> str:
    """A private message from C{nick}, seen only by its addressee."""
    return f"*{nick}* {text}"


def history_start(room: str, count: int) -> str:
    return notice(f"Last {count} line(s) of {room}:")


def history_end(room: str) -> str:
    return notice(f"End of history of {room}.")


def stamp(when: float) -> str:
    """
    How a replayed line shows its time: UTC, to the second.
    """
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))


def history_line(room: str, when: str, kind: str, nick: str, text: str) -> str:
    """
    A stored line replayed: the time it was said, in parentheses, tells it
    from a live one.
    """
    if kind == "action":
        return f"[{room}] ({when}) * {nick} {text}"
    return f"[{room}] ({when}) <{nick}> {text}"


def motd_start() -> str:
    return notice("Message of the day:")


def motd_line(text: str) -> str:
    """One line of the operator's message of the day."""
    return notice(f"- {text}" if text else "-")


def shutting_down() -> str:
    """The last line every client gets when the server stops."""
    return notice("The server is shutting down. Goodbye.")


def goodbye() -> str:
    """The last line a client that quits gets."""
    return notice("Goodbye.")


def welcome(nick: str, room: str | None) -> str:
    where = "" if room is None else f" You are in {room}."
    return notice(f"Welcome to chatservice, {nick}!{where} Type /help for commands.")


def count_members(n: int) -> str:
    return f"{n} member" if n == 1 else f"{n} members"


# Events only the line front end has: its "current room", and its help.


@dataclass(frozen=True, slots=True)
class Switched(Event):
    """The member's current room is now C{room}, which it was in already."""

    room: str


@dataclass(frozen=True, slots=True)
class PartedSelf(Event):
    """The member left C{room}; its current room is now C{now}, if any."""

    room: str
    now: str | None


@dataclass(frozen=True, slots=True)
class EmptyHistory(Event):
    room: str


@dataclass(frozen=True, slots=True)
class StatusUnchanged(Event):
    """
    The member asked to give (C{voice} true) or take a voice in C{room} to
    or from C{nick}, who has (or lacks) one already: nothing was done.
    """

    room: str
    nick: str
    voice: bool


@dataclass(frozen=True, slots=True)
class Notice(Event):
    """A line of the line front end's own text, such as help."""

    text: str


# Errors only the line front end has: its slash syntax.


@dataclass(eq=False)
class Usage(ChatError):
    code = "usage"
    usage: str


@dataclass(eq=False)
class UnknownCommand(ChatError):
    code = "unknown_command"
    name: str


@dataclass(eq=False)
class NoSuchCommand(ChatError):
    """C{/help} was asked about a command there is not."""

    code = "no_such_command"
    name: str


E = TypeVar("E")


def _password_rule(e: errors.BadPassword) -> str:
    return f"A password must be {e.shortest} to {e.longest} characters, with no spaces."


def _invalid_name(e: errors.InvalidName) -> str:
    what = "nickname" if e.what == "nickname" else "room name"
    return f"Invalid {what}: {e.reason}."


def _cannot_speak(e: errors.CannotSpeak) -> str:
    if e.why == "muted":
        return f"You are muted in {e.room}."
    if e.why == "moderated":
        return f"{e.room} is moderated: only operators and voiced members speak."
    return f"You are banned from {e.room}."


# What each setting takes, for a refused value.
_SETTING_VALUES = {
    "key": f"a word of 1 to {KEY_MAX} characters without commas, or off",
    "limit": f"a number from 1 to {LIMIT_MAX}, or off",
}


def _bad_setting(e: errors.BadSetting) -> str:
    name = SETTING_NAMES.get(e.setting)
    if name is None:
        return (
            f"No such setting: {e.setting}. Settings: "
            f"{', '.join(sorted(SETTING_NAMES.values()))}."
        )
    takes = _SETTING_VALUES.get(e.setting, "on or off")
    return f"Invalid value for {name}: {e.value} (it takes {takes})."


# How each refusal reads, by its type.
# What a StoreUnavailable stopped, as the start of a sentence.
_UNAVAILABLE = {
    "login": "Logging in",
    "register": "Registering",
    "password": "Changing the password",
}

_REASONS: dict[type[Any], Callable[[Any], str]] = {
    errors.InvalidName: _invalid_name,
    errors.NickTaken: lambda e: f"The nickname {e.nick} is taken.",
    errors.NickRegistered: lambda e: (
        f"The nickname {e.nick} is registered; if it is yours, use "
        f"/login {e.nick} PASSWORD."
    ),
    errors.NoSuchNick: lambda e: f"No such nickname: {e.nick}.",
    errors.NoSuchRoom: lambda e: f"No such room: {e.room}.",
    errors.NotInRoom: lambda e: f"You are not in {e.room}.",
    errors.NoRoom: lambda e: "You are not in any room; /join one first.",
    errors.NotOperator: lambda e: f"You are not an operator of {e.room}.",
    errors.TargetNotInRoom: lambda e: f"{e.nick} is not in {e.room}.",
    errors.TopicTooLong: lambda e: (
        f"Topic too long (the limit is {e.limit} characters); it was not set."
    ),
    errors.BadCursor: lambda e: f"{e.cursor} is not a place in that room's history.",
    errors.Banned: lambda e: (
        f"You are banned from {e.room}: {e.reason}."
        if e.reason
        else f"You are banned from {e.room}."
    ),
    errors.InviteOnly: lambda e: (
        f"{e.room} is invite only: an operator of it must /invite you first."
    ),
    errors.BadKey: lambda e: (
        f"{e.room} has a key, and that was not it: /join {e.room} KEY."
    ),
    errors.RoomFull: lambda e: f"{e.room} is full; try again later.",
    errors.CannotSpeak: _cannot_speak,
    errors.BadMask: lambda e: f"Invalid mask {e.mask}: {e.reason}.",
    errors.BadSetting: _bad_setting,
    errors.BadDuration: lambda e: (
        f"Invalid duration {e.duration}: give 30s, 10m, 2h, 7d or 4w (at "
        "most ten years), or forever."
    ),
    errors.ListFull: lambda e: (
        f"The {_LIST_NAMES.get(e.kind, e.kind)} of {e.room} is full "
        f"({e.limit} entries); remove some first."
    ),
    errors.NoSuchMask: lambda e: (
        f"{e.mask} is not "
        f"{_MASK_WORDS[e.kind][1] if e.kind in _MASK_WORDS else e.kind} "
        f"in {e.room}."
    ),
    errors.AlreadyInRoom: lambda e: f"{e.nick} is in {e.room} already.",
    errors.BannedNick: lambda e: (
        f"The nickname {e.nick} is banned in {e.room}; you cannot take it there."
    ),
    errors.RoomNotRegistered: lambda e: f"{e.room} is not registered.",
    errors.RoomAlreadyRegistered: lambda e: (
        f"{e.room} is registered to {e.founder} already."
    ),
    errors.NotFounder: lambda e: f"Only the founder of {e.room} may do that.",
    errors.NoHistory: lambda e: "This server keeps no history.",
    errors.NoAccounts: lambda e: "This server keeps no accounts.",
    errors.BadPassword: _password_rule,
    errors.AlreadyRegistered: lambda e: f"{e.nick} is registered already.",
    errors.RegisteredMeanwhile: lambda e: (
        f"{e.nick} was registered by someone else meanwhile."
    ),
    errors.GuestNick: lambda e: (
        "Guest nicknames cannot be registered: choose one with /nick first."
    ),
    errors.NotRegistered: lambda e: f"{e.nick} is not registered.",
    errors.AlreadyLoggedIn: lambda e: f"You are logged in as {e.nick} already.",
    errors.NotServerOperator: lambda e: f"{e.name} is not a server operator.",
    errors.WrongPassword: lambda e: (
        "Wrong password; the password is unchanged."
        if e.nick is None
        else f"Wrong password for {e.nick}."
    ),
    errors.NotLoggedIn: lambda e: (
        "You are not logged in."
        if e.to == "logout"
        else "Only a logged-in user may register a room: /login NICK PASSWORD."
        if e.to == "register_room"
        else "Log in first: /login NICK PASSWORD."
    ),
    errors.TooManyFailures: lambda e: (
        f"Too many failed logins; try again in {e.wait} s."
    ),
    errors.Busy: lambda e: "Your last account command is still being worked on.",
    errors.NotSaved: lambda e: (
        "Registration failed; try again later."
        if e.what == "register"
        else "Changing the password failed; try again later."
    ),
    errors.StoreUnavailable: lambda e: (
        f"{_UNAVAILABLE[e.what]} is not possible now: the account database "
        "cannot be reached. Try again later."
    ),
    errors.NoPrivileges: lambda e: "Only server operators may do that; see /oper.",
    errors.NoText: lambda e: "There is no text to send.",
    errors.ServerBanned: lambda e: (
        f"You are banned from this server ({e.reason})."
        if e.reason
        else "You are banned from this server."
    ),
    errors.NoSuchServerBan: lambda e: f"There is no server ban on {e.mask}.",
    errors.ServerBansFull: lambda e: (
        f"The server ban list is full ({e.limit} bans); lift one first."
    ),
    errors.Failed: lambda e: "That failed; try again later.",
    errors.LineTooLong: lambda e: (
        f"Line too long (the limit is {e.limit} bytes); it was dropped."
    ),
    errors.ExcessFlood: lambda e: (
        f"Excess flood: more than {e.queue} lines waiting at {e.rate:g} lines "
        "a second; disconnecting."
    ),
    errors.IdleTimeout: lambda e: f"No input for {e.seconds:g} seconds; disconnecting.",
    errors.PlainPort: lambda e: (
        "This port speaks plain text, not TLS; use the TLS port."
    ),
    errors.ServerFull: lambda e: (
        f"The server is full ({e.limit} connections); try again later."
    ),
    errors.TooManyFromAddress: lambda e: (
        f"Too many connections from your address (the limit is {e.limit}); "
        "try again later."
    ),
    Usage: lambda e: f"Usage: {e.usage}",
    UnknownCommand: lambda e: f"Unknown command: /{e.name}. Type /help for the list.",
    NoSuchCommand: lambda e: f"No such command: {e.name}. Type /help for the list.",
}


def reason(e: ChatError) -> str:
    """
    What the line protocol says of the refusal C{e}, without the C{!!!}.
    """
    return _REASONS[type(e)](e)


def expiry(expires: float | None) -> str:
    """When a ban ends, as the lists show it."""
    return "no expiry" if expires is None else f"until {stamp(expires)}"


def server_ban(ban: ServerBan) -> str:
    """One server ban, as C{/sbans} and C{/sban} show it."""
    because = f": {ban.reason}" if ban.reason else ""
    when = f"{expiry(ban.expires)}; set by {ban.by} at {stamp(ban.at)}"
    return f"{ban.mask} ({when}){because}"


def _ban_added(e: events.ServerBanAdded) -> list[str]:
    went = f"; {count_members(e.removed)} disconnected" if e.removed else ""
    return [notice(f"Server ban set: {server_ban(e.entry)}{went}.")]


def _ban_list(e: events.ServerBanList) -> list[str]:
    if not e.total:
        return [notice("There are no server bans.")]
    more = f", the first {len(e.entries)} shown" if len(e.entries) < e.total else ""
    return [
        notice(f"{e.total} server ban(s){more}:"),
        *[notice(f"  {server_ban(ban)}") for ban in e.entries],
    ]


def audit_line(entry: AuditEntry) -> str:
    """One audit entry: when, who, what, to whom, where, and why."""
    parts = [stamp(entry.time), entry.actor, entry.action]
    if entry.target:
        parts.append(entry.target)
    if entry.room:
        parts.append(f"in {entry.room}")
    line = " ".join(parts)
    return f"{line}: {entry.detail}" if entry.detail else line


def _audit(e: events.AuditLog) -> list[str]:
    if not e.entries:
        return [notice("The audit log is empty.")]
    return [
        notice(f"Last {len(e.entries)} moderation action(s):"),
        *[notice(f"  {audit_line(entry)}") for entry in e.entries],
    ]


def _replay(e: events.Replay) -> list[str]:
    return [
        history_start(e.room, len(e.lines)),
        *[
            history_line(e.room, stamp(line.time), line.kind, line.nick, line.text)
            for line in e.lines
        ],
        history_end(e.room),
    ]


def who(
    room: str,
    nicks: Sequence[str],
    limit: int = WHO_LIMIT,
    operators: Container[str] = (),
    voiced: Container[str] = (),
) -> str:
    """
    The names in C{room}, at most C{limit} of them, as one line of text;
    an operator's with an C{@} before it, a voiced member's with a C{+}
    (nicknames cannot start with either).
    """
    shown = ", ".join(
        [
            f"@{nick}" if nick in operators else f"+{nick}" if nick in voiced else nick
            for nick in nicks[:limit]
        ]
    )
    if len(nicks) > limit:
        shown += f", and {len(nicks) - limit} more"
    return f"{room} ({count_members(len(nicks))}): {shown}"


def _names(e: events.Names) -> list[str]:
    return [notice(who(e.room, e.nicks, operators=e.operators, voiced=e.voiced))]


def _room_list(e: events.RoomList) -> list[str]:
    if not e.rooms:
        return [notice("There are no rooms.")]
    return [
        notice(f"{len(e.rooms)} room(s):"),
        *[notice(f"  {name} ({count})") for name, count in e.rooms],
    ]


def _motd(e: events.Motd) -> list[str]:
    return [motd_start(), *[motd_line(line) for line in e.lines]]


def _parted(e: PartedSelf) -> list[str]:
    if e.now is None:
        after = "you are in no room now; /join one to talk"
    else:
        after = f"now talking in {e.now}"
    return [notice(f"You left {e.room}; {after}.")]


def _one(format: Callable[[E], str]) -> Callable[[E], Sequence[str]]:
    return lambda event: [format(event)]


# Events of more than one line, or of rarer kinds: formatted to a list of
# lines. The room lines, which are most of the traffic, have their own fast
# path in LineRenderer.render.
_LINES: dict[type[Any], Callable[[Any], Sequence[str]]] = {
    events.Private: _one(lambda e: private(e.sender, e.text)),
    events.Welcome: _one(lambda e: welcome(e.nick, e.room)),
    events.Motd: _motd,
    events.Entered: _one(
        lambda e: notice(f"Now talking in {e.room} ({count_members(e.count)}).")
    ),
    events.Replay: _replay,
    events.Names: _names,
    events.RoomList: _room_list,
    events.NickChanged: _one(lambda e: notice(f"You are now known as {e.nick}.")),
    events.SameNick: _one(lambda e: notice(f"You are already {e.nick}.")),
    events.Displaced: _one(
        lambda e: notice(f"{e.nick} has logged in from elsewhere; you are renamed.")
    ),
    events.Registered: _one(
        lambda e: notice(f"{e.nick} is registered to you, and you are logged in.")
    ),
    events.LoggedIn: _one(lambda e: notice(f"You are logged in as {e.nick}.")),
    events.LoggedOut: _one(lambda e: notice("You are logged out.")),
    events.ServerOperatorUp: _one(lambda e: notice("You are now a server operator.")),
    events.ServerOperatorDown: _one(
        lambda e: notice("You are no longer a server operator.")
    ),
    events.PasswordChanged: _one(lambda e: notice("Your password is changed.")),
    events.Killed: _one(
        lambda e: error(f"You were disconnected by {e.by} ({e.reason}).")
    ),
    events.KillDone: _one(lambda e: notice(f"{e.nick} was disconnected ({e.reason}).")),
    events.ServerNotice: _one(
        lambda e: notice(f"Notice to everyone from {e.by}: {e.text}")
    ),
    events.ServerBanAdded: _ban_added,
    events.ServerBanRemoved: _one(lambda e: notice(f"Server ban on {e.mask} lifted.")),
    events.ServerBanList: _ban_list,
    events.AuditLog: _audit,
    events.Goodbye: _one(lambda e: goodbye()),
    events.Closing: _one(lambda e: shutting_down()),
    events.Refused: _one(lambda e: error(reason(e.error))),
    events.Joined: _one(lambda e: joined(e.room, e.nick)),
    events.Left: _one(lambda e: left(e.room, e.nick)),
    events.Quit: _one(lambda e: quit(e.room, e.nick, e.reason)),
    events.Renamed: _one(lambda e: renamed(e.room, e.old, e.new)),
    events.Topic: _one(lambda e: topic(e.room, e.text, e.nick, e.time)),
    events.NoTopic: _one(lambda e: notice(f"{e.room} has no topic.")),
    events.TopicSet: _one(lambda e: topic_set(e.room, e.nick, e.text)),
    events.SettingChanged: _one(
        lambda e: setting_changed(e.room, e.nick, e.setting, e.value)
    ),
    events.Kicked: _one(lambda e: kicked(e.room, e.nick, e.by, e.reason)),
    events.Opped: _one(lambda e: opped(e.room, e.nick, e.by)),
    events.Deopped: _one(lambda e: deopped(e.room, e.nick, e.by)),
    events.Voiced: _one(lambda e: f"[{e.room}] --- {e.by} gave {e.nick} a voice"),
    events.Devoiced: _one(lambda e: f"[{e.room}] --- {e.by} took {e.nick}'s voice"),
    events.MaskAdded: _one(lambda e: mask_added(e.room, e.nick, e.kind, e.entry)),
    events.MaskRemoved: _one(lambda e: mask_removed(e.room, e.nick, e.kind, e.mask)),
    events.MaskList: _mask_list,
    events.RoomRegistered: _one(lambda e: room_registered(e.room, e.nick, e.founder)),
    events.RoomSettings: _one(room_settings),
    events.Invited: _one(
        lambda e: notice(f"{e.by} invites you to {e.room}: /join {e.room} to enter.")
    ),
    events.InviteSent: _one(lambda e: notice(f"You invited {e.nick} to {e.room}.")),
    StatusUnchanged: _one(
        lambda e: notice(
            f"{e.nick} has a voice in {e.room} already."
            if e.voice
            else f"{e.nick} has no voice in {e.room}."
        )
    ),
    events.OperatorUnchanged: _one(
        lambda e: notice(
            f"{e.nick} is an operator of {e.room} already."
            if e.operator
            else f"{e.nick} is not an operator of {e.room}."
        )
    ),
    Switched: _one(lambda e: notice(f"Now talking in {e.room}.")),
    PartedSelf: _parted,
    EmptyHistory: _one(lambda e: notice(f"No history in {e.room}.")),
    Notice: _one(lambda e: notice(e.text)),
}


_SAID = events.Said
_ACTED = events.Acted
_NOTICED = events.Noticed


class LineRenderer:
    """
    Renders events as the line protocol's CRLF-ended UTF-8 lines. One
    instance serves every line connection.
    """

    def render(self, event: Event) -> bytes:
        kind = type(event)
        # The lines said in rooms are most of what a server sends: format
        # them without a table look-up or a list.
        if kind is _SAID:
            e: Any = event
            return f"[{e.room}] <{e.nick}> {e.text}\r\n".encode()
        if kind is _ACTED:
            e = event
            return f"[{e.room}] * {e.nick} {e.text}\r\n".encode()
        if kind is _NOTICED:
            # A notice reads as a line said: the line protocol has no other.
            e = event
            return f"[{e.room}] <{e.nick}> {e.text}\r\n".encode()
        lines = _LINES[kind](event)
        return "".join([line + "\r\n" for line in lines]).encode()

    def render_to(self, nick: str, event: Event) -> bytes:
        # A line client is told the same whoever it is.
        return self.render(event)
