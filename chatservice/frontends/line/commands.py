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

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from chatservice.core import errors, events
from chatservice.core.accounts import Accounts
from chatservice.core.durations import parse_duration
from chatservice.core.errors import ChatError
from chatservice.core.history import HISTORY_MAX
from chatservice.core.server_operators import AUDIT_MAX, ServerOperators
from chatservice.frontends.line.user import LineUser
from chatservice.frontends.line.wire import (
    EmptyHistory,
    NoSuchCommand,
    Notice,
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
    user.join(_required(argument, "join"))


def _part(user: LineUser, argument: str) -> None:
    user.part(argument or None)


def _rooms(user: LineUser, argument: str) -> None:
    user.chat.list_rooms(user.member)


def _who(user: LineUser, argument: str) -> None:
    chat = user.chat
    chat.names(user.member, chat.room(argument) if argument else user.here())


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


def _looks_like_duration(word: str) -> bool:
    return word[:1].isdigit() or word.lower() in ("forever", "permanent")


def _sban(user: LineUser, argument: str) -> None:
    operators = _operators(user)
    mask, _, rest = argument.partition(" ")
    rest = rest.strip()
    first, _, after = rest.partition(" ")
    duration = None
    if first and _looks_like_duration(first):
        duration = parse_duration(first)
        rest = after.strip()
    operators.ban(user.member, _required(mask, "sban"), duration, rest)


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
            "ROOM",
            "Enter ROOM (creating it if needed) and talk there.",
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
