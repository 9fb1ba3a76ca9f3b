"""
The IRC front end's renderer: the core's events as IRC lines, and every
numeric and sentence an IRC client reads.

Room events are rendered once for every IRC member of a room
(L{IRCRenderer.render}), so they name no recipient; replies name theirs
(L{IRCRenderer.render_to}). Users appear as C{nick!nick@HOST}, HOST being
the same cloak for everyone (the chat keeps no addresses to show).

A renderer serves one kind of client: those with the same capabilities
that change what they are sent (L{caps.CAPABILITIES}' C{renders}):
C{server-time} and C{message-tags} tag every line, C{echo-message} shows a
sender its own lines, C{batch} (with C{server-time}) replays history as a
C{chathistory} batch. The factory keeps one renderer per such set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from chatservice.core import errors, events
from chatservice.core.errors import ChatError
from chatservice.core.events import Event, Setting
from chatservice.frontends.irc import caps, tags
from chatservice.frontends.irc.split import split

# What every user's host shows.
CLOAK = "chatservice"
# The room settings that are channel modes without an argument, by name.
FLAG_MODES: dict[Setting, str] = {
    "invite_only": "i",
    "moderated": "m",
    "no_external": "n",
    "secret": "s",
    "topic_locked": "t",
}
# The channel mode letter of each list of masks a room keeps.
LIST_MODES = {"ban": "b", "quiet": "q"}
# Each list's numerics: an entry, the end (Solanum's 728 and 729 for quiets).
_LIST_NUMERICS = {
    "ban": ("367", "368", "End of channel ban list"),
    "quiet": ("728", "729", "End of channel quiet list"),
}
# The most bytes of an IRC line, its CRLF included.
LINE_MAX = 512
ACTION = "\x01ACTION "


def user(nick: str) -> str:
    """The prefix a user's lines come from."""
    return f"{nick}!{nick}@{CLOAK}"


def text_room(nick: str, command: str, target: str) -> int:
    """
    The most bytes of text that fit one line from C{nick} to C{target}.
    """
    head = f":{user(nick)} {command} {target} :"
    return LINE_MAX - 2 - len(head.encode("utf-8"))


def channel(room: str) -> str:
    return f"#{room}"


def line(prefix: str, command: str, *params: str) -> str:
    """
    One IRC line without its CRLF: the last parameter is trailing (after
    C{:}) whenever it is empty, holds a space or starts with C{:}.
    """
    parts = [f":{prefix}", command, *params[:-1]]
    if params:
        last = params[-1]
        if not last or " " in last or last.startswith(":"):
            last = ":" + last
        parts.append(last)
    return " ".join(parts)


# Events only the IRC front end has.


@dataclass(frozen=True, slots=True)
class Reply(Event):
    """
    A numeric reply: C{code} and its parameters after the recipient's
    nickname, the last one trailing.
    """

    code: str
    params: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TagMsg(Event):
    """
    C{nick} sent C{target} (a channel or a nickname) the client-only
    C{tags} alone: IRCv3's C{TAGMSG}, for clients with C{message-tags}.
    """

    nick: str
    target: str
    tags: str


@dataclass(frozen=True, slots=True)
class Echo(Event):
    """
    The private message C{private} the member told sent to C{target}, shown
    back to it (C{echo-message}).
    """

    target: str
    private: events.Private


@dataclass(frozen=True, slots=True)
class Raw(Event):
    """
    A line with C{command} and its parameters, from C{source}: the server
    (C{PONG}, C{CAP}), the recipient itself (its own C{PART}), or nobody
    (C{ERROR}).
    """

    command: str
    params: tuple[str, ...]
    source: Literal["server", "you", "none"] = "server"


@dataclass(frozen=True, slots=True)
class NamesReply(Event):
    """
    The answer to C{NAMES}: who is in each of C{rooms} (a room one may not
    see has no names: it is left out), then one RPL_ENDOFNAMES for
    C{target}, the channels as the client named them (C{*}: all).
    """

    rooms: tuple[events.Names, ...]
    target: str


# Errors only IRC has: its syntax.


@dataclass(eq=False)
class IRCError(ChatError):
    """
    A refusal worded by IRC's numeric C{code}: C{params} follow the
    recipient's nickname, the last one being the text.
    """

    code = "irc"
    numeric: str
    params: tuple[str, ...]


def need_more_params(command: str) -> IRCError:
    return IRCError("461", (command, "Not enough parameters"))


def unknown_command(command: str) -> IRCError:
    return IRCError("421", (command, "Unknown command"))


def not_registered() -> IRCError:
    return IRCError("451", ("You have not registered",))


def already_registered() -> IRCError:
    return IRCError("462", ("You may not reregister",))


def no_nickname() -> IRCError:
    return IRCError("431", ("No nickname given",))


def no_text() -> IRCError:
    return IRCError("412", ("No text to send",))


def no_recipient(command: str) -> IRCError:
    return IRCError("411", (f"No recipient given ({command})",))


# What each core refusal is in IRC: a numeric and its parameters, or None
# for a notice with the line front end's kind of sentence.
def _refusal(e: ChatError) -> tuple[str, tuple[str, ...]]:
    if isinstance(e, IRCError):
        return e.numeric, e.params
    if isinstance(e, errors.InvalidName):
        if e.what == "nickname":
            return "432", (e.name or "*", f"Erroneous nickname: {e.reason}")
        return "403", (e.name, f"No such channel: {e.reason}")
    if isinstance(e, errors.NickTaken):
        return "433", (e.nick, "Nickname is already in use")
    if isinstance(e, errors.NickRegistered):
        return "433", (e.nick, "Nickname is registered; log in to use it")
    if isinstance(e, errors.NoSuchNick):
        return "401", (e.nick, "No such nick/channel")
    if isinstance(e, errors.NoSuchRoom):
        return "403", (_as_channel(e.room), "No such channel")
    if isinstance(e, errors.NotInRoom):
        return "442", (_as_channel(e.room), "You're not on that channel")
    if isinstance(e, errors.NotOperator):
        return "482", (_as_channel(e.room), "You're not channel operator")
    if isinstance(e, errors.TargetNotInRoom):
        return "441", (e.nick, _as_channel(e.room), "They aren't on that channel")
    if isinstance(e, errors.Banned):
        why = f"Cannot join channel (+b): {e.reason}" if e.reason else _BANNED
        return "474", (_as_channel(e.room), why)
    if isinstance(e, errors.InviteOnly):
        return "473", (_as_channel(e.room), "Cannot join channel (+i)")
    if isinstance(e, errors.BadKey):
        return "475", (_as_channel(e.room), "Cannot join channel (+k)")
    if isinstance(e, errors.RoomFull):
        return "471", (_as_channel(e.room), "Cannot join channel (+l)")
    if isinstance(e, errors.CannotSpeak):
        return "404", (_as_channel(e.room), _CANNOT_SPEAK[e.why])
    if isinstance(e, errors.AlreadyInRoom):
        return "443", (e.nick, _as_channel(e.room), "is already on channel")
    if isinstance(e, errors.BannedNick):
        return "435", (
            e.nick,
            _as_channel(e.room),
            "Cannot change nickname while banned on channel",
        )
    if isinstance(e, errors.ListFull):
        letter = LIST_MODES.get(e.kind, e.kind)
        return "478", (
            _as_channel(e.room),
            letter,
            f"Channel {e.kind} list is full ({e.limit} entries)",
        )
    if isinstance(e, errors.TopicTooLong):
        return "NOTICE", (f"The topic is too long (the limit is {e.limit})",)
    if isinstance(e, errors.LineTooLong):
        return "417", ("Input line was too long",)
    if isinstance(e, errors.WrongPassword):
        return "464", ("Password incorrect",)
    if isinstance(e, errors.TooManyFailures):
        return "464", (f"Too many failed logins; try again in {e.wait} s",)
    if isinstance(e, errors.NotServerOperator):
        return "491", ("No O-lines for your host",)
    if isinstance(e, errors.NoPrivileges):
        return "481", ("Permission Denied- You're not an IRC operator",)
    if isinstance(e, errors.NoText):
        return "412", ("No text to send",)
    return "NOTICE", (_SENTENCES.get(type(e), lambda e: e.code)(e),)


def _as_channel(room: str) -> str:
    return room if room.startswith("#") else channel(room)


_BANNED = "Cannot join channel (+b)"
# Why one may not speak in a channel, as ERR_CANNOTSENDTOCHAN says it.
_CANNOT_SPEAK = {
    "moderated": "Cannot send to channel (+m: only operators and voiced users)",
    "muted": "Cannot send to channel (you are muted: +q)",
    "banned": "Cannot send to channel (you are banned: +b)",
}


def cannot_send(room: str) -> IRCError:
    """ERR_CANNOTSENDTOCHAN for one outside C{room}, which has C{+n}."""
    return IRCError(
        "404", (_as_channel(room), "Cannot send to channel (+n: you are not on it)")
    )


# Refusals that end the connection: IRC says them with ERROR.
_CLOSING: dict[type[Any], Callable[[Any], str]] = {
    errors.ExcessFlood: lambda e: "Excess Flood",
    errors.IdleTimeout: lambda e: f"Ping timeout: {e.seconds:g} seconds",
    errors.PlainPort: lambda e: "This port speaks plain text, not TLS",
    errors.ServerFull: lambda e: f"The server is full ({e.limit} connections)",
    errors.TooManyFromAddress: lambda e: (
        f"Too many connections from your address (the limit is {e.limit})"
    ),
}

_SENTENCES: dict[type[Any], Callable[[Any], str]] = {
    errors.NoRoom: lambda e: "You are not on any channel",
    errors.NoHistory: lambda e: "This server keeps no history",
    errors.NoAccounts: lambda e: "This server keeps no accounts",
    errors.BadPassword: lambda e: (
        f"A password must be {e.shortest} to {e.longest} characters"
    ),
    errors.AlreadyRegistered: lambda e: f"{e.nick} is registered already",
    errors.GuestNick: lambda e: "Guest nicknames cannot be registered",
    errors.NotRegistered: lambda e: f"{e.nick} is not registered",
    errors.AlreadyLoggedIn: lambda e: f"You are logged in as {e.nick} already",
    errors.NotLoggedIn: lambda e: "You are not logged in",
    errors.Busy: lambda e: "Your last account command is still being worked on",
    errors.NotSaved: lambda e: "That failed; try again later",
    errors.StoreUnavailable: lambda e: (
        "The account database cannot be reached; try again later"
    ),
    errors.Failed: lambda e: "That failed; try again later",
    errors.NoSuchMask: lambda e: (
        f"{e.mask} is not on the {e.kind} list of {_as_channel(e.room)}"
    ),
    errors.BadMask: lambda e: f"{e.mask} is not a mask: {e.reason}",
    errors.BadSetting: lambda e: f"{e.value} is not a value for {e.setting}",
    errors.BadDuration: lambda e: f"{e.duration} is not a duration",
    errors.NoSuchServerBan: lambda e: f"No K-line on {e.mask}",
    errors.ServerBansFull: lambda e: f"The K-line list is full ({e.limit})",
}


def banned(reason: str) -> str:
    """Why a banned client is refused (465), and the end of its ERROR."""
    return (
        f"You are banned from this server ({reason})"
        if reason
        else ("You are banned from this server")
    )


def _until(expires: float | None) -> str:
    return "permanent" if expires is None else f"until {stamp(expires)}"


def stamp(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))


_SAID = events.Said
# What message-tags clients get a msgid and the sender's tags on.
_MESSAGES = frozenset(
    {events.Said, events.Acted, events.Noticed, events.Private, TagMsg, Echo}
)
# What echo-message shows a sender of its own room lines.
_ECHOED = frozenset({events.Said, events.Acted, events.Noticed})
_NOTHING: frozenset[type[Event]] = frozenset()
# What IRC shows as a channel MODE line.
_MODE_CHANGES = frozenset(
    {
        events.Opped,
        events.Deopped,
        events.Voiced,
        events.Devoiced,
        events.SettingChanged,
        events.MaskAdded,
        events.MaskRemoved,
    }
)


class MessageIds:
    """
    The C{msgid} of each message: one for every renderer that writes it,
    so that clients of every kind see the same id. Kept by the event's
    identity, holding the event so that its id cannot be reused; the most
    recent L{KEPT} are remembered, which covers every renderer of a flush
    but the largest.
    """

    KEPT = 4096

    def __init__(self) -> None:
        self._ids: dict[int, tuple[Event, str]] = {}
        self._next = 0
        # Ids from a server started later never repeat this one's.
        self._era = f"{int(time.time() * 1000):x}"

    def __call__(self, event: Event) -> str:
        ids = self._ids
        kept = ids.get(id(event))
        if kept is not None and kept[0] is event:
            return kept[1]
        if len(ids) >= self.KEPT:
            ids.clear()
        self._next += 1
        msgid = f"{self._era}-{self._next:x}"
        ids[id(event)] = (event, msgid)
        return msgid


class Departures:
    """
    How many quits, renames and channel mode changes the renderers of a
    server have written, in all: a client whose output was written since
    it last looked holds no C{QUIT} or C{NICK} that another room's copy
    could repeat, nor C{MODE} lines to make one, and need not be searched
    for them (see L{chatservice.frontends.irc.protocol}).
    """

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class IRCRenderer:
    """
    Renders events as IRC lines from C{server} (the server's name), for
    clients with the capabilities C{enabled} (those that change rendering).

    @param clock: the time C{server-time} tags lines with.
    @param msgids: where messages get their C{msgid}, shared by every
        renderer of a server.
    @param departures: the count of quits and renames written, shared by
        every renderer of a server.
    @ivar echoed: the room events a member is sent when it caused them
        (see L{chatservice.core.session.Renderer}).
    """

    def __init__(
        self,
        server: str,
        enabled: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.time,
        msgids: MessageIds | None = None,
        departures: Departures | None = None,
    ) -> None:
        self.server = server
        self.departures = Departures() if departures is None else departures
        self.caps = enabled
        self.clock = clock
        self.msgids = MessageIds() if msgids is None else msgids
        self.time = caps.SERVER_TIME in enabled
        self.tags = caps.MESSAGE_TAGS in enabled
        self.echo = caps.ECHO_MESSAGE in enabled
        self.batch = caps.BATCH in enabled
        self.userhost = caps.USERHOST_IN_NAMES in enabled
        self.multi_prefix = caps.MULTI_PREFIX in enabled
        self.echoed = _ECHOED if self.echo else _NOTHING
        self._stamped = (-1, "")
        if not (self.time or self.tags):
            # Untagged clients (most) cost no call more than before.
            self.render = self._render  # type: ignore[method-assign]
            self.render_to = self._render_to  # type: ignore[method-assign]

    # Tags

    def render(self, event: Event) -> bytes:
        return self._tagged(self._render(event), event)

    def render_to(self, nick: str, event: Event) -> bytes:
        return self._tagged(self._render_to(nick, event), event)

    def _tagged(self, data: bytes, event: Event) -> bytes:
        """
        C{data}, each line of it tagged for C{event} as this renderer's
        clients read tags; a line with tags already keeps its own.
        """
        if not data:
            return data
        given = []
        if self.time:
            given.append("time=" + self.now())
        kind = type(event)
        if self.tags and kind in _MESSAGES:
            e: Any = event
            given.append("msgid=" + self.msgids(e.private if kind is Echo else e))
            client = e.private.tags if kind is Echo else e.tags
            if client:
                given.append(client)
        if not given:
            return data
        head = ("@" + ";".join(given) + " ").encode()
        if data.count(b"\r\n") == 1 and not data.startswith(b"@"):
            return head + data
        return b"".join(
            [
                (each if each.startswith(b"@") else head + each) + b"\r\n"
                for each in data.split(b"\r\n")[:-1]
            ]
        )

    def now(self) -> str:
        """The time now, as server-time writes it; one format a millisecond."""
        when = self.clock()
        millis = int(when * 1000)
        if millis != self._stamped[0]:
            self._stamped = (millis, tags.iso(when))
        return self._stamped[1]

    # Room events: the same bytes for every IRC member of the room.

    def _render(self, event: Event) -> bytes:
        kind = type(event)
        e: Any = event
        if kind is _SAID:
            text = e.text
            nick = e.nick
            # Most lines said fit one IRC line whatever their characters
            # (4 bytes each at most, with the prefix's fixed 26 bytes and
            # room to spare): one format, without measuring or cutting.
            if (2 * len(nick) + len(e.room) + len(text)) * 4 + 40 <= LINE_MAX - 2:
                return (
                    f":{nick}!{nick}@{CLOAK} PRIVMSG #{e.room} :{text}\r\n"
                ).encode()
            return self._talk(user(e.nick), "PRIVMSG", channel(e.room), text)
        if kind is events.Acted:
            return self._talk(
                user(e.nick), "PRIVMSG", channel(e.room), e.text, action=True
            )
        if kind is events.Noticed:
            return self._talk(user(e.nick), "NOTICE", channel(e.room), e.text)
        if kind is events.Joined:
            return _lines([line(user(e.nick), "JOIN", channel(e.room))])
        if kind is events.Left:
            params = (channel(e.room), e.reason) if e.reason else (channel(e.room),)
            return _lines([line(user(e.nick), "PART", *params)])
        if kind is events.Quit:
            self.departures.count += 1
            return _lines([line(user(e.nick), "QUIT", f"Quit: {e.reason}")])
        if kind is events.Renamed:
            self.departures.count += 1
            return _lines([f":{user(e.old)} NICK :{e.new}"])
        if kind is events.Kicked:
            return _lines(
                [line(user(e.by), "KICK", channel(e.room), e.nick, e.reason or e.by)]
            )
        if kind is events.TopicSet:
            return _lines([line(user(e.nick), "TOPIC", channel(e.room), e.text)])
        if kind is events.RoomRegistered:
            # IRC has no word for it: a notice from the server to the
            # channel, as services' registrations are announced.
            done = (
                "unregistered the channel"
                if e.founder is None
                else f"registered the channel to the account {e.founder}"
            )
            return _lines(
                [line(self.server, "NOTICE", channel(e.room), f"{e.nick} {done}")]
            )
        if kind in _MODE_CHANGES:
            self.departures.count += 1
        if kind is events.Opped or kind is events.Deopped:
            sign = "+o" if kind is events.Opped else "-o"
            return _lines([line(user(e.by), "MODE", channel(e.room), sign, e.nick)])
        if kind is events.Voiced or kind is events.Devoiced:
            sign = "+v" if kind is events.Voiced else "-v"
            return _lines([line(user(e.by), "MODE", channel(e.room), sign, e.nick)])
        if kind is events.SettingChanged:
            return _lines([line(user(e.nick), "MODE", channel(e.room), *_change(e))])
        if kind is events.MaskAdded or kind is events.MaskRemoved:
            added = kind is events.MaskAdded
            sign = ("+" if added else "-") + LIST_MODES[e.kind]
            mask = e.entry.mask if added else e.mask
            return _lines([line(user(e.nick), "MODE", channel(e.room), sign, mask)])
        if kind is events.Closing:
            return _lines([f"ERROR :Closing link: {self.server} is shutting down"])
        if kind is TagMsg:
            return _lines([line(user(e.nick), "TAGMSG", e.target)])
        if isinstance(event, events.RoomEvent):
            # A room event this renderer does not know: IRC clients are
            # told nothing of it, rather than something wrong.
            return b""
        return self._render_to("*", event)

    def _talk(
        self, prefix: str, command: str, target: str, text: str, action: bool = False
    ) -> bytes:
        """
        C{text} to C{target}, in as many lines as it takes.
        """
        return _lines(self._talk_lines(prefix, command, target, text, action))

    def _talk_lines(
        self, prefix: str, command: str, target: str, text: str, action: bool = False
    ) -> list[str]:
        head = f":{prefix} {command} {target} :"
        room = LINE_MAX - 2 - len(head.encode("utf-8")) - (len(ACTION) + 1) * action
        pieces = split(text, room)
        if action:
            return [f"{head}{ACTION}{piece}\x01" for piece in pieces]
        return [head + piece for piece in pieces]

    # Replies: to one member, by name.

    def _render_to(self, nick: str, event: Event) -> bytes:
        kind = type(event)
        if kind is events.Private or kind is Echo:
            # Already bytes, cut to IRC's lines: not through lines_to.
            e: Any = event
            if kind is Echo:
                private = e.private
                return self._talk(
                    user(nick),
                    "NOTICE" if private.notice else "PRIVMSG",
                    e.target,
                    private.text,
                )
            command = "NOTICE" if e.notice else "PRIVMSG"
            return self._talk(user(e.sender), command, nick, e.text)
        return _lines(self.lines_to(nick, event))

    def numeric(self, nick: str, code: str, *params: str) -> str:
        return line(self.server, code, nick, *params)

    def notice(self, nick: str, text: str) -> str:
        return line(self.server, "NOTICE", nick, text)

    def lines_to(self, nick: str, event: Event) -> list[str]:
        kind = type(event)
        e: Any = event
        server = self.server
        if kind is Reply:
            return [self.numeric(nick, e.code, *e.params)]
        if kind is Raw:
            if e.source == "none":
                return [line("", e.command, *e.params)[2:]]
            return [
                line(
                    server if e.source == "server" else user(nick), e.command, *e.params
                )
            ]
        if kind is events.Entered:
            # The joiner's own JOIN; the names follow as their own event.
            return [line(user(nick), "JOIN", channel(e.room))]
        if kind is events.Names:
            return [
                *self.namreply(nick, e),
                self.numeric(nick, "366", channel(e.room), "End of /NAMES list."),
            ]
        if kind is NamesReply:
            return [
                *[each for names in e.rooms for each in self.namreply(nick, names)],
                self.numeric(nick, "366", e.target, "End of /NAMES list."),
            ]
        if kind is events.Topic:
            target = channel(e.room)
            return [
                self.numeric(nick, "332", target, e.text),
                self.numeric(nick, "333", target, user(e.nick), str(int(e.time))),
            ]
        if kind is events.NoTopic:
            return [self.numeric(nick, "331", channel(e.room), "No topic is set")]
        if kind is events.OperatorUnchanged:
            return []
        if kind is events.MaskList:
            return self.mask_list(nick, e)
        if kind is events.Invited:
            return [line(user(e.by), "INVITE", nick, channel(e.room))]
        if kind is events.InviteSent:
            return [self.numeric(nick, "341", e.nick, channel(e.room))]
        if kind is events.RoomList:
            return [
                self.numeric(nick, "321", "Channel", "Users  Name"),
                *[
                    self.numeric(nick, "322", channel(name), str(count), "")
                    for name, count in e.rooms
                ],
                self.numeric(nick, "323", "End of /LIST"),
            ]
        if kind is events.Replay:
            target = channel(e.room)
            if self.batch and self.time:
                return self.replay_batch(target, e.lines)
            return [
                line(
                    server,
                    "NOTICE",
                    target,
                    f"Last {len(e.lines)} line(s) of {target}:",
                ),
                *[
                    line(
                        server,
                        "NOTICE",
                        target,
                        f"[{stamp(h.time)}] "
                        + (f"* {h.nick} " if h.kind == "action" else f"<{h.nick}> ")
                        + h.text,
                    )
                    for h in e.lines
                ],
                line(server, "NOTICE", target, f"End of history of {target}."),
            ]
        if kind is events.Motd:
            return self.motd(nick, e.lines)
        if kind is events.NickChanged:
            # The new nickname as trailing, as most servers send it: some
            # clients (ii) read it only there.
            return [f":{user(e.old)} NICK :{e.nick}"]
        if kind is events.SameNick:
            return []
        if kind is events.Displaced:
            return [
                self.notice(
                    nick, f"{e.nick} has logged in from elsewhere; you are renamed"
                )
            ]
        if kind in (events.Registered, events.LoggedIn):
            return [
                self.numeric(
                    nick,
                    "900",
                    user(nick),
                    e.nick,
                    f"You are now logged in as {e.nick}",
                )
            ]
        if kind is events.ServerOperatorUp:
            return [
                self.numeric(nick, "381", "You are now an IRC operator"),
                f":{user(nick)} MODE {nick} :+o",
            ]
        if kind is events.ServerOperatorDown:
            return [f":{user(nick)} MODE {nick} :-o"]
        if kind is events.LoggedOut:
            return [self.numeric(nick, "901", user(nick), "You are now logged out")]
        if kind is events.PasswordChanged:
            return [self.notice(nick, "Your password is changed")]
        if kind is events.Killed:
            return [f"ERROR :Closing link: {nick} (Killed ({e.by} ({e.reason})))"]
        if kind is events.KillDone:
            return [self.notice(nick, f"Killed {e.nick} ({e.reason})")]
        if kind is events.ServerNotice:
            # Told to everyone at once: from the operator, to every client
            # of the server (the $* mask), whoever the recipient.
            return self._talk_lines(user(e.by), "NOTICE", "$*", e.text)
        if kind is events.ServerBanAdded:
            ban = e.entry
            went = f"; {e.removed} disconnected" if e.removed else ""
            because = f": {ban.reason}" if ban.reason else ""
            added = f"Added K-line on {ban.mask} ({_until(ban.expires)})"
            return [self.notice(nick, f"{added}{because}{went}")]
        if kind is events.ServerBanRemoved:
            return [self.notice(nick, f"Removed K-line on {e.mask}")]
        if kind is events.ServerBanList:
            return [
                *[
                    self.numeric(
                        nick,
                        "216",
                        "K",
                        ban.mask,
                        "*",
                        "*",
                        f"{ban.reason or 'no reason'} (set by {ban.by} at "
                        f"{stamp(ban.at)}, {_until(ban.expires)})",
                    )
                    for ban in e.entries
                ],
                *(
                    [self.notice(nick, f"{e.total - len(e.entries)} more not shown")]
                    if e.total > len(e.entries)
                    else []
                ),
                self.numeric(nick, "219", "K", "End of /STATS report"),
            ]
        if kind is events.AuditLog:
            return [
                self.notice(nick, f"Audit: last {len(e.entries)} action(s)"),
                *[
                    self.notice(
                        nick,
                        f"Audit: {stamp(a.time)} {a.actor} {a.action}"
                        + (f" {a.target}" if a.target else "")
                        + (f" in {_as_channel(a.room)}" if a.room else "")
                        + (f": {a.detail}" if a.detail else ""),
                    )
                    for a in e.entries
                ],
                self.notice(nick, "Audit: end"),
            ]
        if kind is events.Goodbye:
            return [f"ERROR :Closing link: {nick}"]
        if kind is events.Closing:
            return [f"ERROR :Closing link: {server} is shutting down"]
        if kind is events.Welcome:
            return []
        if kind is events.Refused:
            error = e.error
            if isinstance(error, errors.ServerBanned):
                why = banned(error.reason)
                return [
                    self.numeric(nick, "465", why),
                    f"ERROR :Closing link: {nick} ({why})",
                ]
            closing = _CLOSING.get(type(error))
            if closing is not None:
                return [f"ERROR :Closing link: {closing(error)}"]
            if isinstance(error, IRCError) and error.numeric == "ERROR":
                return [f"ERROR :Closing link: {error.params[0]}"]
            code, params = _refusal(error)
            if code == "NOTICE":
                return [self.notice(nick, params[0])]
            return [self.numeric(nick, code, *params)]
        if kind is TagMsg:
            return [line(user(e.nick), "TAGMSG", e.target)]
        if isinstance(event, events.RoomEvent):
            return self._render(event).decode("utf-8").split("\r\n")[:-1]
        return []

    def replay_batch(
        self, target: str, lines: Sequence[events.HistoryLine]
    ) -> list[str]:
        """
        History as a C{chathistory} batch: each line as it was said, tagged
        with the time it was said.
        """
        ref = tags.batch_id()
        out = [line(self.server, "BATCH", f"+{ref}", "chathistory", target)]
        for each in lines:
            head = f"@batch={ref};time={tags.iso(each.time)} "
            out.extend(
                head + piece
                for piece in self._talk_lines(
                    user(each.nick),
                    "PRIVMSG",
                    target,
                    each.text,
                    action=each.kind == "action",
                )
            )
        out.append(line(self.server, "BATCH", f"-{ref}"))
        return out

    def namreply(self, nick: str, names: events.Names) -> list[str]:
        """
        RPL_NAMREPLY lines, as many as the names take (none for no names):
        operators marked C{@}, voices C{+} (both, C{@+}, with
        C{multi-prefix}), each name as C{nick!user@host} with
        C{userhost-in-names}; C{@} before the channel says it is secret,
        C{=} that it is public.
        """
        if not names.nicks:
            return []
        target = channel(names.room)
        symbol = "@" if names.secret else "="
        marked = [
            _prefix(each, names, self.multi_prefix)
            + (user(each) if self.userhost else each)
            for each in names.nicks
        ]
        head = len(self.numeric(nick, "353", symbol, target, "x").encode()) + 2
        return [
            self.numeric(nick, "353", symbol, target, " ".join(group))
            for group in _fit(marked, LINE_MAX - head)
        ]

    def mask_list(self, nick: str, listing: events.MaskList) -> list[str]:
        """
        A list of masks: RPL_BANLIST (367) for bans, Solanum's RPL_QUIETLIST
        (728, with the mode letter) for quiets, each entry with who set it
        and when; then the end of the list.
        """
        entry, end, text = _LIST_NUMERICS[listing.kind]
        target = channel(listing.room)
        letter = () if listing.kind == "ban" else (LIST_MODES[listing.kind],)
        return [
            *[
                self.numeric(
                    nick, entry, target, *letter, ban.mask, ban.by, str(int(ban.at))
                )
                for ban in listing.entries
            ],
            self.numeric(nick, end, target, *letter, text),
        ]

    def motd(self, nick: str, text: Iterable[str]) -> list[str]:
        lines = list(text)
        if not lines:
            return [self.numeric(nick, "422", "MOTD File is missing")]
        return [
            self.numeric(nick, "375", f"- {self.server} Message of the day -"),
            *[self.numeric(nick, "372", f"- {each}") for each in lines],
            self.numeric(nick, "376", "End of /MOTD command."),
        ]


def channel_modes(
    settings: events.RoomSettings, keyed: bool, inside: bool
) -> tuple[str, ...]:
    """
    RPL_CHANNELMODEIS's modes and values for C{settings}: the flags set,
    C{k} if the room is C{keyed}, C{l} if it has a limit; the key and the
    limit themselves only for a member (C{inside}), as Solanum and Hybrid
    show them.
    """
    flags = [letter for name, letter in FLAG_MODES.items() if getattr(settings, name)]
    values = []
    if keyed:
        flags.append("k")
        if inside and settings.key is not None:
            values.append(settings.key)
    if settings.limit is not None:
        flags.append("l")
        if inside:
            values.append(str(settings.limit))
    return ("+" + "".join(flags), *values)


def _change(event: events.SettingChanged) -> tuple[str, ...]:
    """A setting's change as a channel mode and its argument, if any."""
    setting = event.setting
    if setting in FLAG_MODES:
        return (("+" if event.value else "-") + FLAG_MODES[setting],)
    letter = "k" if setting == "key" else "l"
    if event.value is None:
        # The key taken off is not shown again.
        return ("-k", "*") if letter == "k" else ("-l",)
    return ("+" + letter, str(event.value))


def _prefix(nick: str, names: events.Names, every: bool) -> str:
    """
    The channel status of C{nick} in C{names}: the highest, or C{every}
    one (C{multi-prefix}).
    """
    op = "@" if nick in names.operators else ""
    voice = "+" if nick in names.voiced else ""
    return op + voice if every else op or voice


def _fit(words: Sequence[str], room: int) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    size = 0
    for word in words:
        cost = len(word.encode("utf-8")) + 1
        if groups[-1] and size + cost > room:
            groups.append([])
            size = 0
        groups[-1].append(word)
        size += cost
    return groups


def _lines(lines: list[str]) -> bytes:
    return "".join([each + "\r\n" for each in lines]).encode("utf-8")
