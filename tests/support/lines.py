"""
The chat core with the line front end's policy, driven without a socket:
L{LineChat} offers the operations a line client's commands perform (say in
the current room, join and make current, ...), so that tests of the core's
rules can read as what a line user sees.
"""

from __future__ import annotations

from typing import Any

from chatservice.core.chat import Chat
from chatservice.core.rooms import Member, Room
from chatservice.core.session import Session
from chatservice.frontends.line import wire
from chatservice.frontends.line.user import LineUser

# The one line renderer, as the line front end's factory has it.
RENDERER = wire.LineRenderer()


class LineChat:
    """
    A L{Chat} and the L{LineUser} of each member connected through it. What
    is not the line front end's own is the core's operation, as it is.
    """

    def __init__(self, **options: Any) -> None:
        self.chat = Chat(**options)
        self.users: dict[Member, LineUser] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.chat, name)

    def connect(self, session: Session) -> Member:
        user = LineUser.connect(self.chat, session)
        self.users[user.member] = user
        return user.member

    def current(self, member: Member) -> Room | None:
        """
        The member's current room, if it is still in it.
        """
        current = self.users[member].current
        if current is None or member.rooms.get(current.folded) is not current:
            return None
        return current

    def say(self, member: Member, text: str) -> None:
        self.users[member].say(text)

    def act(self, member: Member, text: str) -> None:
        self.users[member].act(text)

    def join(self, member: Member, room: str) -> Room:
        return self.users[member].join(room)

    def part(self, member: Member, room: str | None = None) -> Room:
        return self.users[member].part(room)

    def who(self, room: Room, limit: int = wire.WHO_LIMIT) -> str:
        """
        What C{/who} shows of C{room}, without the C{***}.
        """
        return wire.who(
            room.name,
            [m.nick for m in room.members],
            limit,
            {m.nick for m in room.operators},
        )
