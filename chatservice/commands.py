"""
The slash commands, in one table.

C{/help} and C{docs/protocol.md} both come from L{COMMANDS} (a test keeps
the doc in step), so a command added here is documented in the same change.
Handlers talk only to the L{Registry}; the protocol that calls them only
parses lines and dispatches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chatservice import wire
from chatservice.registry import ChatError, Member, Registry

Handler = Callable[[Registry, Member, str], None]


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


def _nick(registry: Registry, member: Member, argument: str) -> None:
    registry.rename(member, _required(argument, "nick"))


def _join(registry: Registry, member: Member, argument: str) -> None:
    registry.join(member, _required(argument, "join"))


def _part(registry: Registry, member: Member, argument: str) -> None:
    registry.part(member, argument or None)


def _rooms(registry: Registry, member: Member, argument: str) -> None:
    rooms = list(registry.listing())
    if not rooms:
        registry.tell(member, wire.notice("There are no rooms."))
        return
    registry.tell(member, wire.notice(f"{len(rooms)} room(s):"))
    for room in rooms:
        registry.tell(member, wire.notice(f"  {room.name} ({len(room.members)})"))


def _who(registry: Registry, member: Member, argument: str) -> None:
    room = registry.room(argument) if argument else registry.room_of(member, None)
    registry.tell(member, wire.notice(registry.who(room)))


def _msg(registry: Registry, member: Member, argument: str) -> None:
    nick, _, text = argument.partition(" ")
    text = text.strip()
    if not nick or not text:
        raise ChatError(f"Usage: {COMMANDS['msg'].usage}")
    registry.whisper(member, nick, text)


def _me(registry: Registry, member: Member, argument: str) -> None:
    registry.act(member, _required(argument, "me"))


def _help(registry: Registry, member: Member, argument: str) -> None:
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


def _quit(registry: Registry, member: Member, argument: str) -> None:
    registry.quit(member, argument)


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
        Command("help", "[COMMAND]", "List the commands, or explain one.", _help),
        Command("quit", "[MESSAGE]", "Leave the chat; your rooms see MESSAGE.", _quit),
    ]
}


def dispatch(
    registry: Registry, member: Member, line: str, as_typed: str | None = None
) -> None:
    """
    Act on one input line from C{member}: a command, or chat.

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
                raise ChatError(f"Unknown command: /{name}. Type /help for the list.")
            if command.takes_name and as_typed is not None:
                argument = as_typed.partition(" ")[2]
            command.handler(registry, member, argument.strip())
        else:
            registry.say(member, line[1:] if line.startswith("//") else line)
    except ChatError as e:
        registry.tell(member, wire.error(str(e)))
