"""
Who had a nickname: the nicknames members left behind, by quitting or by
taking another, newest first (IRC's C{WHOWAS}, RFC 2812 3.6.3).

Bounded twice, so that a flood of renames cannot grow it: a few entries per
nickname, and a fixed number of nicknames, the longest unused forgotten
first. Kept in memory only; a restart forgets it, as IRC servers do.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from chatservice.core import names
from chatservice.core.rooms import Member

# Nicknames remembered; the one left longest ago is forgotten first.
NICKS_KEPT = 1024
# Entries remembered for one nickname.
ENTRIES_PER_NICK = 8


@dataclass(frozen=True, slots=True)
class Departed:
    """
    Someone who was called C{nick}: the user name and real name its client
    gave (a member without them has its nickname for both), until C{when}.
    """

    nick: str
    user: str
    realname: str
    when: float


def identity(member: Member) -> tuple[str, str]:
    """
    The user name and real name C{member}'s client gave, if its session
    has an C{identity} (IRC's C{USER}); else its nickname for both.
    """
    given: tuple[str, str] | None = getattr(member.session, "identity", None)
    return (member.nick, member.nick) if given is None else given


class Whowas:
    """
    The bounded record of departed nicknames.
    """

    def __init__(
        self, nicks: int = NICKS_KEPT, per_nick: int = ENTRIES_PER_NICK
    ) -> None:
        self._nicks = nicks
        self._per_nick = per_nick
        self._entries: OrderedDict[str, deque[Departed]] = OrderedDict()

    def record(self, member: Member, when: float) -> None:
        """
        C{member} no longer goes by its nickname (it quit or is renaming),
        as of C{when}.
        """
        user, realname = identity(member)
        entries = self._entries.get(member.folded)
        if entries is None:
            entries = self._entries[member.folded] = deque(maxlen=self._per_nick)
            if len(self._entries) > self._nicks:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(member.folded)
        entries.appendleft(Departed(member.nick, user, realname, when))

    def lookup(self, nick: str, count: int = 0) -> list[Departed]:
        """
        Who was called C{nick} (in any case), newest first: at most
        C{count} of them, or all if C{count} is not positive.
        """
        entries = self._entries.get(names.fold(nick), ())
        found = list(entries)
        return found[:count] if count > 0 else found
