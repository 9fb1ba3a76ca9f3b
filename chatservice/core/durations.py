"""
Durations as moderators type them: C{30s}, C{10m}, C{2h}, C{7d}, C{1w},
or several together (C{1h30m}); a bare number is seconds; C{0} or
C{forever} means no expiry. Server bans use them, and room bans and mutes
take the same syntax, so it is parsed here, once, for every front end.

Bounded: a ban that outlives the server is a ban that nobody remembers
setting. At most L{MAX_SECONDS} (ten years); more is refused, as is a
duration of no time that was not asked for as "forever".
"""

from __future__ import annotations

import re

from chatservice.core import errors

# The longest duration taken: ten years of 365 days.
MAX_SECONDS = 10 * 365 * 86400

# Seconds in each unit.
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

FOREVER = ("0", "forever", "permanent")

# One or more number-and-unit pieces, or one bare number; the length bound
# keeps any number small enough to multiply without care.
_PIECE = re.compile(r"(\d{1,12})([smhdw])")
_WHOLE = re.compile(r"(?:\d{1,12}[smhdw])+|\d{1,12}")

SYNTAX = "a duration such as 30s, 10m, 2h, 7d or 1w (0 or forever: no expiry)"


def parse_duration(text: str) -> float | None:
    """
    The seconds C{text} stands for, or None for no expiry; raises
    L{errors.BadDuration} for anything else, or for more than ten years.
    """
    typed = text.strip().lower()
    if typed in FOREVER:
        return None
    if not _WHOLE.fullmatch(typed):
        raise errors.BadDuration(text, SYNTAX)
    if typed.isdigit():
        seconds = int(typed)
    else:
        seconds = sum(int(n) * UNITS[unit] for n, unit in _PIECE.findall(typed))
    return check_duration(seconds, text)


def check_duration(seconds: float | None, text: str | None = None) -> float | None:
    """
    C{seconds} if the chat takes it as a duration (None: no expiry); a
    number from a request that gives one (a web client's) is checked here
    too. Raises L{errors.BadDuration}, naming C{text} or the number.
    """
    if seconds is None:
        return None
    shown = str(seconds) if text is None else text
    if seconds != seconds or seconds <= 0:
        raise errors.BadDuration(shown, "it must be more than no time (0: no expiry)")
    if seconds > MAX_SECONDS:
        raise errors.BadDuration(shown, "it must be at most ten years")
    return float(seconds)


def describe(seconds: float) -> str:
    """
    C{seconds} the way L{parse_duration} reads it, in the largest units
    that fit exactly: C{2h}, C{1d12h}, C{90s}.
    """
    left = round(seconds)
    if left <= 0:
        return "0s"
    parts = []
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts)
