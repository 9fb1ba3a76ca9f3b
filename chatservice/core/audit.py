"""
The audit log: who did what to whom, and when, for every moderation action
(kicks, bans, mutes, room settings, server operators' kills and bans).

Server operators read the newest entries back; the storage keeps them so
that they survive a restart. Bounded in memory: the newest L{KEEP} entries,
the ones a moderator asks about; the database keeps what it is given.

No I/O: whoever builds the chat hands in a C{save} callable (the
database's) and loads stored entries with L{Audit.load}.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from twisted.logger import Logger

# Entries kept in memory.
KEEP = 1000

log = Logger()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """
    C{actor} (a nickname, with its account if it had one, as the front
    ends show it) did C{action} to C{target} (a nickname, a mask, an
    account; empty if none), in C{room} (empty: server-wide), at C{time};
    C{detail} is the reason or value given.
    """

    time: float
    actor: str
    action: str
    target: str = ""
    room: str = ""
    detail: str = ""


class Audit:
    """
    The newest moderation actions, newest last.

    @param clock: the wall clock entries are dated by.
    @param save: stores an entry (fire and forget: the database logs what
        it cannot write); None keeps them in memory only.
    @param keep: how many entries memory keeps.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        save: Callable[[AuditEntry], object] | None = None,
        keep: int = KEEP,
    ) -> None:
        self.clock = clock
        self.save = save
        self._entries: deque[AuditEntry] = deque(maxlen=keep)

    def record(
        self,
        actor: str,
        action: str,
        target: str = "",
        room: str = "",
        detail: str = "",
    ) -> AuditEntry:
        entry = AuditEntry(self.clock(), actor, action, target, room, detail)
        self._entries.append(entry)
        log.info(
            "audit: {actor} {action} {target} {room} {detail}",
            actor=actor,
            action=action,
            target=target,
            room=room,
            detail=detail,
        )
        if self.save is not None:
            self.save(entry)
        return entry

    def load(self, entries: Iterable[AuditEntry]) -> None:
        """Take stored entries, oldest first, as if just recorded."""
        self._entries.extend(entries)

    def recent(self, n: int) -> list[AuditEntry]:
        """The newest C{n} entries, oldest first."""
        if n <= 0:
            return []
        entries = list(self._entries)
        return entries[-n:]
