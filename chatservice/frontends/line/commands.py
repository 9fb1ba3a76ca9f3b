"""
The slash commands, in one table.

C{/help} and C{docs/protocol.md} both come from L{COMMANDS} (a test keeps
the doc in step), so a command added here is documented in the same change.
Handlers talk only to the L{Registry}; the protocol that calls them only
parses lines and dispatches.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from chatservice.core.accounts import Accounts
from chatservice.core.history import HISTORY_MAX
from chatservice.core.registry import ChatError, Member, Registry
from chatservice.frontends.line import wire

log = Logger()


@dataclass(frozen=True)
class Chat:
    """
    What a command may act on: the registry, and the accounts if the server
    keeps them.
    """

    registry: Registry
    accounts: Accounts | None = None


# A handler acts at once, or returns a Deferred that fires when it is done;
# the connection handles no further line of its until then.
Handler = Callable[[Chat, Member, str], "Deferred[None] | None"]

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


def _required(argument: str, command: str) -> str:
    if not argument:
        raise ChatError(f"Usage: {COMMANDS[command].usage}")
    return argument


def _nick(chat: Chat, member: Member, argument: str) -> None:
    chat.registry.rename(member, _required(argument, "nick"))


def _join(chat: Chat, member: Member, argument: str) -> None:
    chat.registry.join(member, _required(argument, "join"))


def _part(chat: Chat, member: Member, argument: str) -> None:
    chat.registry.part(member, argument or None)


def _rooms(chat: Chat, member: Member, argument: str) -> None:
    registry = chat.registry
    rooms = list(registry.listing())
    if not rooms:
        registry.tell(member, wire.notice("There are no rooms."))
        return
    registry.tell(member, wire.notice(f"{len(rooms)} room(s):"))
    for room in rooms:
        registry.tell(member, wire.notice(f"  {room.name} ({len(room.members)})"))


def _who(chat: Chat, member: Member, argument: str) -> None:
    registry = chat.registry
    room = registry.room(argument) if argument else registry.room_of(member, None)
    registry.tell(member, wire.notice(registry.who(room)))


def _msg(chat: Chat, member: Member, argument: str) -> None:
    nick, _, text = argument.partition(" ")
    text = text.strip()
    if not nick or not text:
        raise ChatError(f"Usage: {COMMANDS['msg'].usage}")
    chat.registry.whisper(member, nick, text)


def _me(chat: Chat, member: Member, argument: str) -> None:
    chat.registry.act(member, _required(argument, "me"))


def _help(chat: Chat, member: Member, argument: str) -> None:
    registry = chat.registry
    if argument:
        command = COMMANDS.get(argument.removeprefix("/").lower())
        if command is None:
            raise ChatError(f"No such command: {argument}. Type /help for the list.")
        registry.tell(member, wire.notice(f"{command.usage}: {command.summary}"))
        return
    registry.tell(member, wire.notice("Commands:"))
    for command in COMMANDS.values():
        registry.tell(member, wire.notice(f"  {command.usage}: {command.summary}"))
    registry.tell(
        member,
        wire.notice(
            "Other lines go to your current room; start a line with // to "
            "send one that begins with /."
        ),
    )


def _history(chat: Chat, member: Member, argument: str) -> None:
    registry = chat.registry
    if registry.history is None:
        raise ChatError("This server keeps no history.")
    try:
        n = int(argument) if argument else HISTORY_DEFAULT
    except ValueError:
        raise ChatError(f"Usage: {COMMANDS['history'].usage}") from None
    if n < 1:
        raise ChatError(f"Usage: {COMMANDS['history'].usage}")
    room = registry.room_of(member, None)
    n = min(n, HISTORY_MAX)
    if not registry.replay_history(member, room, n):
        registry.tell(member, wire.notice(f"No history in {room.name}."))


def _accounts(chat: Chat) -> Accounts:
    if chat.accounts is None:
        raise ChatError("This server keeps no accounts.")
    return chat.accounts


def _words(argument: str, command: str, count: int) -> list[str]:
    words = argument.split()
    if len(words) != count:
        raise ChatError(f"Usage: {COMMANDS[command].usage}")
    return words


def _register(chat: Chat, member: Member, argument: str) -> Deferred[None]:
    (password,) = _words(argument, "register", 1)
    return _started(member, chat, _accounts(chat).register(member, password))


def _login(chat: Chat, member: Member, argument: str) -> Deferred[None]:
    nick, password = _words(argument, "login", 2)
    return _started(member, chat, _accounts(chat).login(member, nick, password))


def _logout(chat: Chat, member: Member, argument: str) -> None:
    _accounts(chat).logout(member)


def _password(chat: Chat, member: Member, argument: str) -> Deferred[None]:
    old, new = _words(argument, "password", 2)
    return _started(member, chat, _accounts(chat).change_password(member, old, new))


def _started(
    member: Member, chat: Chat, work: Coroutine[Any, Any, None]
) -> Deferred[None]:
    """
    Run an account command to its end: a refusal becomes an error line, a
    bug a log line and a generic error line, never a password.
    """

    def failed(failure: Any) -> None:
        if failure.check(ChatError):
            chat.registry.tell(member, wire.error(str(failure.value)))
        else:
            log.failure("An account command failed", failure)
            chat.registry.tell(member, wire.error("That failed; try again later."))

    return Deferred.fromCoroutine(work).addErrback(failed)


def _quit(chat: Chat, member: Member, argument: str) -> None:
    chat.registry.quit(member, argument)


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
        Command("help", "[COMMAND]", "List the commands, or explain one.", _help),
        Command("quit", "[MESSAGE]", "Leave the chat; your rooms see MESSAGE.", _quit),
    ]
}


def dispatch(
    chat: Chat, member: Member, line: str, as_typed: str | None = None
) -> Deferred[None] | None:
    """
    Act on one input line from C{member}: a command, or chat. Returns a
    Deferred if the command goes on after this returns (a login hashes a
    password in a thread): the caller must hold the member's next lines
    until it fires, so that they are handled in the order they were sent.

    @param line: the line, made safe to show (L{sanitize.safe}).
    @param as_typed: the line before that, for commands whose argument is a
        name, which is checked rather than cleaned.

    Refusals come back to the member as error lines; nothing a user types
    can raise out of here as a L{ChatError}.
    """
    registry = chat.registry
    try:
        if line.startswith("/") and not line.startswith("//"):
            name, _, argument = line[1:].partition(" ")
            command = COMMANDS.get(name.lower())
            if command is None:
                raise ChatError(f"Unknown command: /{name}. Type /help for the list.")
            if command.takes_name and as_typed is not None:
                argument = as_typed.partition(" ")[2]
            return command.handler(chat, member, argument.strip())
        registry.say(member, line[1:] if line.startswith("//") else line)
    except ChatError as e:
        registry.tell(member, wire.error(str(e)))
    return None
