"""
What the line front end keeps of one member: its current room.

The core's operations name their room; a line client names it only when it
joins. Plain lines go to the room joined (or switched to) last, and when that
room is left the room joined most recently among the others takes its place.
Connecting is line policy too: a guest nickname, the welcome, the message of
the day, and the lobby.
"""

from __future__ import annotations

from collections.abc import Sequence

from chatservice.core import errors, events
from chatservice.core.accounts import Accounts
from chatservice.core.chat import Chat
from chatservice.core.rooms import Member, Room
from chatservice.core.server_operators import ServerOperators
from chatservice.core.session import Session
from chatservice.frontends.line.wire import PartedSelf, Switched

# Where every line client starts.
DEFAULT_ROOM = "lobby"


class LineUser:
    """
    One member of the line front end, and its current room.

    @ivar accounts: the accounts service, if the server keeps accounts.
    @ivar operators: the server operators, if any may be.
    """

    __slots__ = ("accounts", "chat", "current", "member", "operators")

    def __init__(
        self,
        chat: Chat,
        member: Member,
        accounts: Accounts | None = None,
        operators: ServerOperators | None = None,
    ) -> None:
        self.chat = chat
        self.member = member
        self.accounts = accounts
        self.operators = operators
        self.current: Room | None = None

    @classmethod
    def connect(
        cls,
        chat: Chat,
        session: Session,
        accounts: Accounts | None = None,
        operators: ServerOperators | None = None,
    ) -> LineUser:
        """
        Add a member for C{session} under a fresh guest nickname, welcome it,
        and put it in the lobby, if the lobby lets it in.
        """
        member = chat.connect(session, chat.guest_nick())
        chat.tell(member, events.Welcome(member.nick, DEFAULT_ROOM))
        if chat.motd:
            chat.tell(member, events.Motd(chat.motd))
        user = cls(chat, member, accounts, operators)
        try:
            user.current = chat.join(member, DEFAULT_ROOM, announce=False)
        except errors.ChatError as e:
            # A lobby closed to this newcomer (a ban on its address, a
            # key, a limit): it is told why, and is in no room until it
            # joins one.
            chat.tell(member, events.Refused(e))
        return user

    def here(self) -> Room:
        """
        The current room: where plain lines go.

        If the member is no longer in it, through no command of its own (an
        operator kicked it, say), the room it joined most recently among
        the others takes its place, as after C{/part}, and it is told so
        before the line that asked goes there.
        """
        current = self.current
        if current is None or self.member.rooms.get(current.folded) is not current:
            latest = self.current = self._latest()
            if latest is None:
                raise errors.NoRoom()
            if current is not None:
                self.chat.tell(self.member, Switched(latest.name))
            current = latest
        return current

    def _latest(self) -> Room | None:
        return next(reversed(self.member.rooms.values()), None)

    def join(self, requested: str, key: str | None = None) -> Room:
        """
        Enter the room C{requested}, giving C{key} if it has one, and make
        it current; joining a room one is in already only makes it current.
        """
        member = self.member
        before = len(member.rooms)
        room = self.chat.join(member, requested, key=key)
        if len(member.rooms) == before:
            self.chat.tell(member, Switched(room.name))
        self.current = room
        return room

    def part(self, requested: str | None = None) -> Room:
        """
        Leave the room C{requested}, or the current room. If that was the
        current room, the room joined most recently among those left
        becomes current.
        """
        chat = self.chat
        room = (
            self.here() if requested is None else chat.room_of(self.member, requested)
        )
        chat.part(self.member, room)
        if self.current is room:
            self.current = self._latest()
        now = None if self.current is None else self.current.name
        chat.tell(self.member, PartedSelf(room.name, now))
        return room

    def say(self, text: str) -> None:
        self.say_all((text,))

    def say_all(self, texts: Sequence[str]) -> None:
        """
        Say each of C{texts} in the current room.
        """
        # What most lines do: here() written out for its common case.
        current = self.current
        if current is None or self.member.rooms.get(current.folded) is not current:
            current = self.here()
        self.chat.say_all(self.member, current, texts)

    def act(self, text: str) -> None:
        self.chat.act(self.member, self.here(), text)
