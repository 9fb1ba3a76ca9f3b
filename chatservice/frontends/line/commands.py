"""
The line protocol's slash commands, in one table, and the dispatch of each
input line to a command or to the current room.

C{/help} and C{docs/protocol.md} both come from L{COMMANDS} (a test keeps
the doc in step), so a command added here is documented in the same change.
Handlers call the core's operations through the member's L{LineUser}; what
they tell the user goes out as events, and a refusal as a typed error that
the line renderer words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from chatservice.core import errors, events, names
from chatservice.core.accounts import Accounts
from chatservice.core.durations import looks_like_duration, parse_duration
from chatservice.core.errors import ChatError
from chatservice.core.events import MaskKind, Setting
from chatservice.core.history import HISTORY_MAX
from chatservice.core.rooms import Room
from chatservice.core.server_operators import AUDIT_MAX, ServerOperators
from chatservice.frontends.line.user import LineUser
from chatservice.frontends.line.wire import (
    EmptyHistory,
    NoSuchCommand,
    Notice,
    StatusUnchanged,
    UnknownCommand,
    Usage,
)

log = Logger()

# A handler acts at once, or returns a Deferred that fires when it is done;
# the connection handles no further line of its until then.
Handler = Callable[[LineUser, str], "Deferred[None] | None"]

HISTORY_DEFAULT = 50


@dataclass(frozen=True)
class Command:
    """
    One slash command.

    @ivar takes_name: the argument is a nickname or room name to be checked
        as typed. Cleaning it first would turn C{/nick a<ESC>b} into C{ab}
        instead of refusing it; the naming rules refuse such characters.
    """

    name: str
    arguments: str
    summary: str
    handler: Handler
    takes_name: bool = False

    @property
    def usage(self) -> str:
        return f"/{self.name} {self.arguments}".rstrip()


def _usage(command: str) -> Usage:
    return Usage(COMMANDS[command].usage)


def _required(argument: str, command: str) -> str:
    if not argument:
        raise _usage(command)
    return argument


def _nick(user: LineUser, argument: str) -> None:
    user.chat.rename(user.member, _required(argument, "nick"))


def _join(user: LineUser, argument: str) -> None:
    name, _, key = argument.partition(" ")
    key = key.strip()
    if not name or " " in key:
        raise _usage("join")
    user.join(name, key or None)


def _part(user: LineUser, argument: str) -> None:
    user.part(argument or None)


def _rooms(user: LineUser, argument: str) -> None:
    user.chat.list_rooms(user.member)


def _who(user: LineUser, argument: str) -> None:
    user.chat.names(user.member, _seen(user, argument) if argument else user.here())


def _seen(user: LineUser, name: str) -> Room:
    """
    The existing room C{name}, if C{user} may see it: a secret room is, to
    whoever is not in it, a room there is not.
    """
    room = user.chat.room(name)
    if not room.visible_to(user.member):
        raise errors.NoSuchRoom(name)
    return room


# What /topic takes to clear the topic: a topic of one dash says nothing.
CLEAR_TOPIC = "-"


def _topic(user: LineUser, argument: str) -> None:
    chat = user.chat
    room = user.here()
    if not argument:
        chat.topic(user.member, room)
    else:
        chat.set_topic(user.member, room, "" if argument == CLEAR_TOPIC else argument)


def _kick(user: LineUser, argument: str) -> None:
    nick, _, reason = argument.partition(" ")
    user.chat.kick(user.member, user.here(), _required(nick, "kick"), reason)


def _op(user: LineUser, argument: str) -> None:
    (nick,) = _words(argument, "op", 1)
    user.chat.op(user.member, user.here(), nick)


def _deop(user: LineUser, argument: str) -> None:
    (nick,) = _words(argument, "deop", 1)
    user.chat.deop(user.member, user.here(), nick)


def _voice(user: LineUser, argument: str) -> None:
    (nick,) = _words(argument, "voice", 1)
    _set_voice(user, nick, True)


def _devoice(user: LineUser, argument: str) -> None:
    (nick,) = _words(argument, "devoice", 1)
    _set_voice(user, nick, False)


def _set_voice(user: LineUser, nick: str, voice: bool) -> None:
    """
    Give or take a voice. The core says nothing when the voice is as asked
    already; a line user who typed a command is told so rather than left
    wondering whether it took.
    """
    room = user.here()
    target = user.chat.members.get(names.fold(nick))
    unchanged = target is not None and (target in room.voiced) == voice
    if voice:
        user.chat.voice(user.member, room, nick)
    else:
        user.chat.devoice(user.member, room, nick)
    if unchanged:
        assert target is not None
        user.chat.tell(user.member, StatusUnchanged(room.name, target.nick, voice))


# A word after the mask that starts as a number does (or with a sign before
# one) is meant as a duration: "-5m" or "2026-12-03" is refused as one,
# rather than taken as the first word of the reason of a ban for ever.
_DURATION_START = re.compile(r"[-+]?\d")


def _mask_arguments(argument: str, command: str) -> tuple[str, float | None, str]:
    """
    MASK [DURATION] [REASON...] as typed: the mask, how long (None: until
    removed), and the reason (may be empty).
    """
    mask, _, rest = argument.partition(" ")
    if not mask:
        raise _usage(command)
    rest = rest.strip()
    first, _, after = rest.partition(" ")
    if first and (looks_like_duration(first) or _DURATION_START.match(first)):
        return mask, parse_duration(first), after.strip()
    return mask, None, rest


def _add_mask(user: LineUser, argument: str, kind: MaskKind, command: str) -> None:
    mask, duration, reason = _mask_arguments(argument, command)
    user.chat.add_mask(user.member, user.here(), kind, mask, duration, reason)


def _remove_mask(user: LineUser, argument: str, kind: MaskKind, command: str) -> None:
    (mask,) = _words(argument, command, 1)
    user.chat.remove_mask(user.member, user.here(), kind, mask)


def _list_masks(user: LineUser, argument: str, kind: MaskKind) -> None:
    room = _seen(user, argument) if argument else user.here()
    user.chat.list_masks(user.member, room, kind)


def _ban(user: LineUser, argument: str) -> None:
    _add_mask(user, argument, "ban", "ban")


def _unban(user: LineUser, argument: str) -> None:
    _remove_mask(user, argument, "ban", "unban")


def _bans(user: LineUser, argument: str) -> None:
    _list_masks(user, argument, "ban")


def _mute(user: LineUser, argument: str) -> None:
    _add_mask(user, argument, "quiet", "mute")


def _unmute(user: LineUser, argument: str) -> None:
    _remove_mask(user, argument, "quiet", "unmute")


def _mutes(user: LineUser, argument: str) -> None:
    _list_masks(user, argument, "quiet")


def _invite(user: LineUser, argument: str) -> None:
    words = argument.split()
    if not 1 <= len(words) <= 2:
        raise _usage("invite")
    chat = user.chat
    room = chat.room_of(user.member, words[1]) if len(words) == 2 else user.here()
    chat.invite(user.member, room, words[0])


# The settings /room set takes, as the line protocol names them: the core's
# name, and whether "on" means the core's value true.
_SETTINGS: dict[str, tuple[Setting, bool]] = {
    "invite": ("invite_only", True),
    "moderated": ("moderated", True),
    "secret": ("secret", True),
    "topiclock": ("topic_locked", True),
    # "external on" lets outsiders speak: the core's no_external off.
    "external": ("no_external", False),
    "key": ("key", True),
    "limit": ("limit", True),
}

_SWITCH = {"on": True, "off": False}


def _setting_value(name: str, value: str) -> tuple[Setting, bool | int | str | None]:
    """The core's setting and value for C{/room set NAME VALUE}."""
    found = _SETTINGS.get(name.lower())
    if found is None:
        raise errors.BadSetting(name[:32], value[:64])
    setting, on = found
    lowered = value.lower()
    if setting == "key":
        return setting, None if lowered == "off" else value
    if setting == "limit":
        if lowered == "off":
            return setting, None
        if not value.isdigit() or len(value) > 12:
            raise errors.BadSetting(setting, value[:64])
        return setting, int(value)
    if lowered not in _SWITCH:
        raise errors.BadSetting(setting, value[:64])
    return setting, _SWITCH[lowered] == on


def _room(user: LineUser, argument: str) -> None:
    chat = user.chat
    member = user.member
    action, _, rest = argument.partition(" ")
    action = action.lower()
    rest = rest.strip()
    if action == "info":
        words = rest.split()
        if len(words) > 1:
            raise _usage("room")
        room = chat.room_of(member, words[0]) if words else user.here()
        chat.tell(member, chat.settings_of(member, room))
    elif action == "set":
        words = rest.split()
        if len(words) != 2:
            raise _usage("room")
        setting, value = _setting_value(*words)
        chat.set_setting(member, user.here(), setting, value)
    elif action == "register" and not rest:
        chat.register_room(member, user.here())
    elif action == "unregister" and not rest:
        # A server operator may unregister a room it does not own.
        operators = user.operators
        overrule = operators is not None and operators.is_operator(member)
        chat.unregister_room(member, user.here(), overrule=overrule)
    else:
        raise _usage("room")


def _msg(user: LineUser, argument: str) -> None:
    nick, _, text = argument.partition(" ")
    text = text.strip()
    if not nick or not text:
        raise _usage("msg")
    user.chat.whisper(user.member, nick, text)


def _me(user: LineUser, argument: str) -> None:
    user.act(_required(argument, "me"))


def _help(user: LineUser, argument: str) -> None:
    tell = user.chat.tell
    member = user.member
    if argument:
        command = COMMANDS.get(argument.removeprefix("/").lower())
        if command is None:
            raise NoSuchCommand(argument)
        tell(member, Notice(f"{command.usage}: {command.summary}"))
        return
    tell(member, Notice("Commands:"))
    for command in COMMANDS.values():
        tell(member, Notice(f"  {command.usage}: {command.summary}"))
    tell(
        member,
        Notice(
            "Other lines go to your current room; start a line with // to "
            "send one that begins with /."
        ),
    )


def _history(user: LineUser, argument: str) -> None:
    chat = user.chat
    if chat.history is None:
        raise errors.NoHistory()
    try:
        n = int(argument) if argument else HISTORY_DEFAULT
    except ValueError:
        raise _usage("history") from None
    if n < 1:
        raise _usage("history")
    room = user.here()
    if not chat.replay_history(user.member, room, min(n, HISTORY_MAX)):
        chat.tell(user.member, EmptyHistory(room.name))


def _accounts(user: LineUser) -> Accounts:
    if user.accounts is None:
        raise errors.NoAccounts()
    return user.accounts


def _words(argument: str, command: str, count: int) -> list[str]:
    words = argument.split()
    if len(words) != count:
        raise _usage(command)
    return words


def _register(user: LineUser, argument: str) -> Deferred[None]:
    (password,) = _words(argument, "register", 1)
    return _started(user, _accounts(user).register(user.member, password))


def _login(user: LineUser, argument: str) -> Deferred[None]:
    nick, password = _words(argument, "login", 2)
    return _started(user, _accounts(user).login(user.member, nick, password))


def _logout(user: LineUser, argument: str) -> None:
    _accounts(user).logout(user.member)


def _password(user: LineUser, argument: str) -> Deferred[None]:
    old, new = _words(argument, "password", 2)
    return _started(user, _accounts(user).change_password(user.member, old, new))


def _started(user: LineUser, work: Coroutine[Any, Any, None]) -> Deferred[None]:
    """
    Run an account command to its end: a refusal becomes an error line, a
    bug a log line and a generic error line, never a password.
    """

    def failed(failure: Any) -> None:
        if failure.check(ChatError):
            user.chat.tell(user.member, events.Refused(failure.value))
        else:
            log.failure("An account command failed", failure)
            user.chat.tell(user.member, events.Refused(errors.Failed()))

    return Deferred.fromCoroutine(work).addErrback(failed)


# Server operators


AUDIT_DEFAULT = 20


def _operators(user: LineUser) -> ServerOperators:
    """The server operators, for a power: without any, nobody has one."""
    if user.operators is None:
        raise errors.NoPrivileges()
    return user.operators


def _oper(user: LineUser, argument: str) -> Deferred[None] | None:
    name, password = _words(argument, "oper", 2)
    operators = user.operators
    if operators is None:
        raise errors.NotServerOperator(name)
    if operators.is_operator(user.member):
        user.chat.tell(user.member, events.ServerOperatorUp())
        return None
    return _started(user, operators.oper(user.member, name, password))


def _kill(user: LineUser, argument: str) -> None:
    nick, _, reason = argument.partition(" ")
    _operators(user).kill(user.member, _required(nick, "kill"), reason.strip())


def _wall(user: LineUser, argument: str) -> None:
    _operators(user).wall(user.member, _required(argument, "wall"))


def _sban(user: LineUser, argument: str) -> None:
    operators = _operators(user)
    # The word after the mask is read as /ban reads it.
    mask, duration, reason = _mask_arguments(argument, "sban")
    operators.ban(user.member, mask, duration, reason)


def _unsban(user: LineUser, argument: str) -> None:
    (mask,) = _words(argument, "unsban", 1)
    _operators(user).unban(user.member, mask)


def _sbans(user: LineUser, argument: str) -> None:
    _operators(user).bans(user.member)


def _audit(user: LineUser, argument: str) -> None:
    operators = _operators(user)
    try:
        n = int(argument) if argument else AUDIT_DEFAULT
    except ValueError:
        raise _usage("audit") from None
    if not 1 <= n <= AUDIT_MAX:
        raise _usage("audit")
    operators.audit(user.member, n)


def _quit(user: LineUser, argument: str) -> None:
    user.chat.quit(user.member, argument)


COMMANDS: dict[str, Command] = {
    command.name: command
    for command in [
        Command(
            "nick",
            "NAME",
            "Change your nickname. Nicknames are unique regardless of case.",
            _nick,
            takes_name=True,
        ),
        Command(
            "join",
            "ROOM [KEY]",
            "Enter ROOM (creating it if needed) and talk there; KEY if the "
            "room has one.",
            _join,
            takes_name=True,
        ),
        Command(
            "part",
            "[ROOM]",
            "Leave ROOM, or your current room.",
            _part,
        ),
        Command("rooms", "", "List the rooms and how many are in each.", _rooms),
        Command("who", "[ROOM]", "List who is in ROOM, or in your current room.", _who),
        Command(
            "topic",
            "[TEXT]",
            "Show the topic of your current room, or (as its operator) set "
            f"it to TEXT; '/topic {CLEAR_TOPIC}' clears it.",
            _topic,
        ),
        Command(
            "kick",
            "NICK [REASON]",
            "Put NICK out of your current room (operators only).",
            _kick,
        ),
        Command(
            "op",
            "NICK",
            "Make NICK an operator of your current room (operators only).",
            _op,
        ),
        Command(
            "deop",
            "NICK",
            "Take operator status in your current room from NICK (operators only).",
            _deop,
        ),
        Command(
            "voice",
            "NICK",
            "Let NICK speak in your current room even when it is moderated "
            "(operators only).",
            _voice,
        ),
        Command(
            "devoice",
            "NICK",
            "Take NICK's voice in your current room (operators only).",
            _devoice,
        ),
        Command(
            "ban",
            "MASK [DURATION] [REASON]",
            "Keep whoever MASK matches (a nickname, nick!user@host, *@ADDRESS, "
            "a network such as *@10.0.0.0/8, or $a:ACCOUNT) out of your "
            "current room, for DURATION (30s, 10m, 2h, 7d, 4w; default: until "
            "unbanned); members it matches are put out (operators only).",
            _ban,
        ),
        Command(
            "unban",
            "MASK",
            "Take MASK off the ban list of your current room (operators only).",
            _unban,
        ),
        Command(
            "bans", "[ROOM]", "List the bans of ROOM, or your current room.", _bans
        ),
        Command(
            "mute",
            "MASK [DURATION] [REASON]",
            "Keep whoever MASK matches (as for /ban) from speaking in your "
            "current room, for DURATION (default: until unmuted; operators only).",
            _mute,
        ),
        Command(
            "unmute",
            "MASK",
            "Take MASK off the mute list of your current room (operators only).",
            _unmute,
        ),
        Command(
            "mutes", "[ROOM]", "List the mutes of ROOM, or your current room.", _mutes
        ),
        Command(
            "invite",
            "NICK [ROOM]",
            "Invite NICK into ROOM, or your current room: it may then enter "
            "even if the room is invite only (only operators invite into such "
            "a room).",
            _invite,
        ),
        Command(
            "room",
            "info [ROOM] | set SETTING VALUE | register | unregister",
            "Show the settings of ROOM or your current room; as its operator, "
            "change one (invite on|off, key WORD|off, limit N|off, moderated "
            "on|off, secret on|off, topiclock on|off, external on|off); "
            "register it to your account, or unregister it (its founder only).",
            _room,
        ),
        Command("msg", "NICK TEXT", "Send TEXT privately to NICK only.", _msg),
        Command("me", "ACTION", "Describe an action: '* you ACTION'.", _me),
        Command(
            "history",
            "[N]",
            f"Show the last N (default {HISTORY_DEFAULT}, at most {HISTORY_MAX}) "
            "lines said in your current room.",
            _history,
        ),
        Command(
            "register",
            "PASSWORD",
            "Register your current nickname with PASSWORD (8 to 128 "
            "characters, no spaces), and log in as it.",
            _register,
        ),
        Command(
            "login",
            "NICK PASSWORD",
            "Log in as the registered NICK, taking the name from whoever has it.",
            _login,
        ),
        Command("logout", "", "Log out; a registered name is given up.", _logout),
        Command(
            "password", "OLD NEW", "Change your password from OLD to NEW.", _password
        ),
        Command(
            "oper",
            "NAME PASSWORD",
            "Become a server operator as the operator account NAME.",
            _oper,
        ),
        Command(
            "kill",
            "NICK [REASON]",
            "Disconnect NICK from the server (server operators only).",
            _kill,
        ),
        Command(
            "wall",
            "TEXT",
            "Send TEXT to everyone connected (server operators only).",
            _wall,
        ),
        Command(
            "sban",
            "MASK [DURATION] [REASON]",
            "Ban an address (1.2.3.4, 10.0.0.0/8, *@10.0.*) or an account "
            "($a:NAME) from the server, for DURATION (30s, 10m, 2h, 7d; 0 or "
            "forever: no expiry, the default); whoever it matches is "
            "disconnected (server operators only).",
            _sban,
        ),
        Command(
            "unsban",
            "MASK",
            "Lift the server ban on MASK (server operators only).",
            _unsban,
        ),
        Command("sbans", "", "List the server bans (server operators only).", _sbans),
        Command(
            "audit",
            "[N]",
            f"Show the last N (default {AUDIT_DEFAULT}, at most {AUDIT_MAX}) "
            "moderation actions (server operators only).",
            _audit,
        ),
        Command("help", "[COMMAND]", "List the commands, or explain one.", _help),
        Command("quit", "[MESSAGE]", "Leave the chat; your rooms see MESSAGE.", _quit),
    ]
}


def dispatch(
    user: LineUser, line: str, as_typed: str | None = None
) -> Deferred[None] | None:
    """
    Act on one input line from C{user}: a command, or chat. Returns a
    Deferred if the command goes on after this returns (a login hashes a
    password in a thread): the caller must hold the member's next lines
    until it fires, so that they are handled in the order they were sent.

    @param line: the line, made safe to show (L{sanitize.safe}).
    @param as_typed: the line before that, for commands whose argument is a
        name, which is checked rather than cleaned.

    Refusals come back to the member as error lines; nothing a user types
    can raise out of here as a L{ChatError}.
    """
    try:
        if line.startswith("/") and not line.startswith("//"):
            name, _, argument = line[1:].partition(" ")
            command = COMMANDS.get(name.lower())
            if command is None:
                raise UnknownCommand(name)
            if command.takes_name and as_typed is not None:
                argument = as_typed.partition(" ")[2]
            return command.handler(user, argument.strip())
        user.say(line[1:] if line.startswith("//") else line)
    except ChatError as e:
        user.chat.tell(user.member, events.Refused(e))
    return None
