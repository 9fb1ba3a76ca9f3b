"""
The session as the server describes it, read from the server's own lines.

L{SessionState} follows the nickname, login and rooms of one session from
the server's replies; L{SessionSnapshot} is that session frozen when a
connection is lost, with the commands that bring a new connection back to
it. Both are pure: no I/O, no clock.

Lines starting C{*** } come only from the server (other people's lines
always start with C{[ROOM]} or C{*NICK*}), so nobody else can make the
client believe it is in a room or logged in.

The patterns below read lines that
L{chatservice.frontends.line.wire} writes; C{tests/client/test_line_format.py}
renders each with C{wire} and reads it back here, so that the two cannot
drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chatservice.core.names import fold, is_guest_nick

# The one line that shows the server took a connection in.
_WELCOME = re.compile(r"\*\*\* Welcome to chatservice, ([^\s!]+)! You are in (\S+?)\.")
_KNOWN_AS = re.compile(r"\*\*\* You are now known as (\S+)\.")
_TALKING = re.compile(r"\*\*\* Now talking in (\S+?)(?: \(\d+ members?\))?\.")
_LEFT = re.compile(
    r"\*\*\* You left (\S+?); (?:now talking in (\S+?)\.|you are in no room now;.*)"
)
_REGISTERED = re.compile(r"\*\*\* (\S+) is registered to you, and you are logged in\.")
_LOGGED_IN = re.compile(r"\*\*\* You are logged in as (\S+)\.")
_LOGGED_OUT = "*** You are logged out."
_DISPLACED = re.compile(r"\*\*\* (\S+) has logged in from elsewhere; you are renamed\.")
_PASSWORD_CHANGED = "*** Your password is changed."

# The last line of every session when the server stops.
SHUTTING_DOWN = "*** The server is shutting down. Goodbye."

# Commands that change what a reconnection restores.
SESSION_COMMANDS = frozenset(
    {"/nick", "/join", "/part", "/login", "/logout", "/register"}
)


def is_welcome(line: str) -> bool:
    """
    Whether the server's C{line} (without its line ending) is its welcome:
    the first line of a session it took in.
    """
    return _WELCOME.match(line) is not None


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """
    The session as it stood when a connection was lost: what to restore.
    """

    nick: str | None = None
    rooms: tuple[str, ...] = ()
    current: str | None = None
    account: str | None = None
    password: str | None = None
    start_room: str = "lobby"

    @property
    def restores_nick(self) -> bool:
        return self.nick is not None and not is_guest_nick(self.nick)

    @property
    def logs_in(self) -> bool:
        return self.account is not None and self.password is not None

    def commands(self) -> list[str]:
        """
        The lines that bring a new connection (a guest in C{start_room}) back
        to this session; none for a session the server never welcomed
        (one refused as full, say), which has nothing to restore.
        """
        if self.nick is None:
            return []
        commands = []
        if self.logs_in:
            commands.append(f"/login {self.account} {self.password}")
        if self.restores_nick and not (
            self.logs_in and fold(self.nick or "") == fold(self.account or "")
        ):
            commands.append(f"/nick {self.nick}")
        start = fold(self.start_room)
        others = [room for room in self.rooms if fold(room) != start]
        commands += [f"/join {room}" for room in others]
        # The server's current room after these: the last one joined.
        current: str | None = others[-1] if others else self.start_room
        if len(others) == len(self.rooms):
            commands.append(f"/part {self.start_room}")
            if current is not None and fold(current) == start:
                current = None
        if self.current is not None and (
            current is None or fold(current) != fold(self.current)
        ):
            commands.append(f"/join {self.current}")
        return commands

    def reached_by(self, state: SessionSnapshot) -> bool:
        """
        Whether C{state} is this session restored: same rooms, current room
        and login, and the same nickname if this one was not a guest's.
        """
        return (
            {fold(room) for room in state.rooms} == {fold(room) for room in self.rooms}
            and fold(state.current or "") == fold(self.current or "")
            and fold(state.account or "") == fold(self.account or "")
            and (
                not self.restores_nick
                or fold(state.nick or "") == fold(self.nick or "")
            )
        )

    def describe(self) -> str:
        """
        What is being restored, for the user.
        """
        parts = []
        if self.restores_nick or self.logs_in:
            nick = self.nick if self.restores_nick else self.account
            parts.append(f"nickname {nick}" + (" (logging in)" if self.logs_in else ""))
        parts.append(f"rooms {', '.join(self.rooms)}" if self.rooms else "no rooms")
        return ", ".join(parts)


class SessionState:
    """
    The session as the server has described it: nickname, rooms (in the
    order joined), current room, and the account logged in to.

    The password of the account is remembered, in memory only, from the
    user's own C{/login}, C{/register} or C{/password} line, and kept only
    once the server has confirmed it; so a mistyped password is never
    replayed.
    """

    def __init__(self) -> None:
        self.nick: str | None = None
        self.rooms: list[str] = []
        self.current: str | None = None
        self.account: str | None = None
        self.password: str | None = None
        self.start_room = "lobby"
        self._login_passwords: dict[str, str] = {}
        self._register_password: str | None = None
        self._new_password: str | None = None

    def snapshot(self) -> SessionSnapshot:
        return SessionSnapshot(
            nick=self.nick,
            rooms=tuple(self.rooms),
            current=self.current,
            account=self.account,
            password=self.password if self.account is not None else None,
            start_room=self.start_room,
        )

    def user_line(self, line: str) -> None:
        """
        The user typed C{line}: note a password it proposes.
        """
        words = line.split()
        if not words:
            return
        command = words[0].lower()
        if command == "/login" and len(words) == 3:
            self._login_passwords[fold(words[1])] = words[2]
        elif command == "/register" and len(words) == 2:
            self._register_password = words[1]
        elif command == "/password" and len(words) == 3:
            self._new_password = words[2]

    def server_line(self, line: str) -> None:
        """
        The server sent C{line} (without its line ending).
        """
        if not line.startswith("*** "):
            return
        if match := _WELCOME.match(line):
            self.nick, room = match.groups()
            self.start_room = room
            self.rooms = [room]
            self.current = room
            self.account = None
        elif match := _KNOWN_AS.fullmatch(line):
            self.nick = match.group(1)
        elif match := _TALKING.fullmatch(line):
            room = match.group(1)
            if not self._in(room):
                self.rooms.append(room)
            self.current = room
        elif match := _LEFT.fullmatch(line):
            left, now = match.groups()
            self.rooms = [room for room in self.rooms if fold(room) != fold(left)]
            self.current = now
        elif match := _REGISTERED.fullmatch(line):
            self.account = match.group(1)
            self.password, self._register_password = self._register_password, None
        elif match := _LOGGED_IN.fullmatch(line):
            self.account = match.group(1)
            self.password = self._login_passwords.pop(fold(self.account), None)
        elif line == _PASSWORD_CHANGED and self._new_password is not None:
            self.password, self._new_password = self._new_password, None
        elif line == _LOGGED_OUT or _DISPLACED.fullmatch(line):
            # Displaced by another login as our name: logging in again on
            # reconnecting would displace that session in turn.
            self.account = None
            self.password = None

    def _in(self, room: str) -> bool:
        return any(fold(room) == fold(joined) for joined in self.rooms)
