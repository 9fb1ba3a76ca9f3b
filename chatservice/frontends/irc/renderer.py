"""
The IRC front end's renderer: the core's events as IRC lines, and every
numeric and sentence an IRC client reads.

Room events are rendered once for every IRC member of a room
(L{IRCRenderer.render}), so they name no recipient; replies name theirs
(L{IRCRenderer.render_to}). Users appear as C{nick!nick@HOST}, HOST being
the same cloak for everyone (the chat keeps no addresses to show).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from chatservice.core import errors, events
from chatservice.core.errors import ChatError
from chatservice.core.events import Event
from chatservice.frontends.irc.split import split

# What every user's host shows.
CLOAK = "chatservice"
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
    if isinstance(e, errors.TopicTooLong):
        return "NOTICE", (f"The topic is too long (the limit is {e.limit})",)
    if isinstance(e, errors.LineTooLong):
        return "417", ("Input line was too long",)
    if isinstance(e, errors.WrongPassword):
        return "464", ("Password incorrect",)
    if isinstance(e, errors.TooManyFailures):
        return "464", (f"Too many failed logins; try again in {e.wait} s",)
    return "NOTICE", (_SENTENCES.get(type(e), lambda e: e.code)(e),)


def _as_channel(room: str) -> str:
    return room if room.startswith("#") else channel(room)


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
    errors.Failed: lambda e: "That failed; try again later",
}


def stamp(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))


_SAID = events.Said


class IRCRenderer:
    """
    Renders events as IRC lines from C{server} (the server's name).
    """

    def __init__(self, server: str) -> None:
        self.server = server

    # Room events: the same bytes for every IRC member of the room.

    def render(self, event: Event) -> bytes:
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
            return _lines([line(user(e.nick), "QUIT", f"Quit: {e.reason}")])
        if kind is events.Renamed:
            return _lines([f":{user(e.old)} NICK :{e.new}"])
        if kind is events.Kicked:
            return _lines(
                [line(user(e.by), "KICK", channel(e.room), e.nick, e.reason or e.by)]
            )
        if kind is events.TopicSet:
            return _lines([line(user(e.nick), "TOPIC", channel(e.room), e.text)])
        if kind is events.Opped or kind is events.Deopped:
            sign = "+o" if kind is events.Opped else "-o"
            return _lines([line(user(e.by), "MODE", channel(e.room), sign, e.nick)])
        if kind is events.Voiced or kind is events.Devoiced:
            sign = "+v" if kind is events.Voiced else "-v"
            return _lines([line(user(e.by), "MODE", channel(e.room), sign, e.nick)])
        if kind is events.SecretSet:
            sign = "+s" if e.secret else "-s"
            return _lines([line(user(e.nick), "MODE", channel(e.room), sign)])
        if kind is events.TopicLocked:
            sign = "+t" if e.locked else "-t"
            return _lines([line(user(e.nick), "MODE", channel(e.room), sign)])
        if kind is events.Closing:
            return _lines([f"ERROR :Closing link: {self.server} is shutting down"])
        if isinstance(event, events.RoomEvent):
            # A room event this renderer does not know: IRC clients are
            # told nothing of it, rather than something wrong.
            return b""
        return self.render_to("*", event)

    def _talk(
        self, prefix: str, command: str, target: str, text: str, action: bool = False
    ) -> bytes:
        """
        C{text} to C{target}, in as many lines as it takes.
        """
        head = f":{prefix} {command} {target} :"
        room = LINE_MAX - 2 - len(head.encode("utf-8")) - (len(ACTION) + 1) * action
        pieces = split(text, room)
        if action:
            return _lines([f"{head}{ACTION}{piece}\x01" for piece in pieces])
        return _lines([head + piece for piece in pieces])

    # Replies: to one member, by name.

    def render_to(self, nick: str, event: Event) -> bytes:
        if type(event) is events.Private:
            # Already bytes, cut to IRC's lines: not through lines_to.
            e: Any = event
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
        if kind is events.LoggedOut:
            return [self.numeric(nick, "901", user(nick), "You are now logged out")]
        if kind is events.PasswordChanged:
            return [self.notice(nick, "Your password is changed")]
        if kind is events.Goodbye:
            return [f"ERROR :Closing link: {nick}"]
        if kind is events.Closing:
            return [f"ERROR :Closing link: {server} is shutting down"]
        if kind is events.Welcome:
            return []
        if kind is events.Refused:
            error = e.error
            closing = _CLOSING.get(type(error))
            if closing is not None:
                return [f"ERROR :Closing link: {closing(error)}"]
            if isinstance(error, IRCError) and error.numeric == "ERROR":
                return [f"ERROR :Closing link: {error.params[0]}"]
            code, params = _refusal(error)
            if code == "NOTICE":
                return [self.notice(nick, params[0])]
            return [self.numeric(nick, code, *params)]
        if isinstance(event, events.RoomEvent):
            return self.render(event).decode("utf-8").split("\r\n")[:-1]
        return []

    def namreply(self, nick: str, names: events.Names) -> list[str]:
        """
        RPL_NAMREPLY lines, as many as the names take (none for no names):
        operators marked C{@}, voices C{+}; C{@} before the channel says it
        is secret, C{=} that it is public.
        """
        if not names.nicks:
            return []
        target = channel(names.room)
        symbol = "@" if names.secret else "="
        marked = [
            ("@" if each in names.operators else "+" if each in names.voiced else "")
            + each
            for each in names.nicks
        ]
        head = len(self.numeric(nick, "353", symbol, target, "x").encode()) + 2
        return [
            self.numeric(nick, "353", symbol, target, " ".join(group))
            for group in _fit(marked, LINE_MAX - head)
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
