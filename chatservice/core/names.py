"""
Nicknames and room names: what is valid, and when two names are the same.

Names are what people use to recognise each other, so the rules aim at
making impersonation hard: names are NFKC-normalized (full-width and other
compatibility forms collapse to their plain form) and compared case-folded,
so C{Alice}, C{ALICE} and a full-width C{alice} are one name.
"""

from __future__ import annotations

import unicodedata

NICK_MAX = 24
ROOM_MAX = 32

# Newcomers are called guest1, guest2, ...: a shape the server hands out and
# the client recognises (a guest's nickname is not worth restoring).
GUEST = "guest"

# Names that would let a user pass as the server or as staff.
RESERVED = frozenset(
    {
        "server",
        "system",
        "chatservice",
        "admin",
        "administrator",
        "root",
        "operator",
        "moderator",
        "nickserv",
        "chanserv",
        "everyone",
        "nobody",
    }
)

_PUNCTUATION = frozenset("_-")
# Letters and marks that show as nothing (Unicode's default-ignorable code
# points that are letters or marks): with them, "alice" and "alice" plus an
# invisible character would be two names that look the same.
_INVISIBLE = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)
# Combining marks are needed by many scripts, but unbounded runs of them
# ("Zalgo" text) paint over neighbouring lines.
_MAX_MARK_RUN = 2


class InvalidName(ValueError):
    """
    A name broke the rules; the message says which rule, for the user.
    """


def fold(name: str) -> str:
    """
    The key under which C{name} is unique: NFKC, then case-folded, then NFKC
    again (case folding can produce non-normalized text).
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def is_guest_nick(nick: str) -> bool:
    """
    Whether C{nick} has the shape of the names handed to newcomers:
    L{GUEST} and digits, as names are compared (L{fold}).
    """
    key = fold(nick)
    return key.startswith(GUEST) and key[len(GUEST) :].isdigit()


def _check(name: str, what: str, limit: int) -> str:
    name = unicodedata.normalize("NFKC", name)
    if not name:
        raise InvalidName(f"{what} must not be empty")
    if len(name) > limit:
        raise InvalidName(f"{what} must be at most {limit} characters")
    marks = 0
    for index, char in enumerate(name):
        if char in _INVISIBLE:
            raise InvalidName(f"{what} may not contain invisible characters")
        category = unicodedata.category(char)
        if category[0] == "M":
            marks += 1
            if index == 0 or marks > _MAX_MARK_RUN:
                raise InvalidName(f"{what} may not start with or stack combining marks")
            continue
        marks = 0
        if not (category[0] == "L" or category == "Nd" or char in _PUNCTUATION):
            raise InvalidName(f"{what} may contain only letters, digits, '_' and '-'")
    if not (unicodedata.category(name[0])[0] == "L" or name[0] == "_"):
        raise InvalidName(f"{what} must start with a letter or '_'")
    if fold(name) in RESERVED:
        raise InvalidName(f"{name} is reserved")
    return name


def nickname(name: str) -> str:
    """
    Return the display form of nickname C{name}, or raise L{InvalidName}.
    """
    return _check(name, "A nickname", NICK_MAX)


def room_name(name: str) -> str:
    """
    Return the display form of room C{name}, or raise L{InvalidName}.

    A leading C{#} is accepted and dropped, for the IRC habit of typing
    C{/join #python}.
    """
    if name.startswith("#"):
        name = name[1:]
    return _check(name, "A room name", ROOM_MAX)
