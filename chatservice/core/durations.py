"""
How long a ban or a mute lasts, as a moderator types it in any front end:
C{30s}, C{10m}, C{2h}, C{7d}, C{4w}, or a bare number of seconds; C{0},
C{forever} or C{permanent} for no end.

Bounded both ways: more than nothing (an expiry in the past is refused,
not taken as "already over") and at most L{DURATION_MAX}, about ten years;
whoever wants longer wants "until removed", and says so.
"""

from __future__ import annotations

import re

from chatservice.core import errors

# About ten years, in seconds.
DURATION_MAX = 10 * 366 * 24 * 3600.0

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d{1,12})([smhdw]?)")
_FOREVER = frozenset(["0", "forever", "permanent", "never"])


def parse_duration(text: str) -> float | None:
    """
    The duration C{text} spells, in seconds, or None for "until removed";
    raises L{errors.BadDuration} for anything else.
    """
    word = text.strip().lower()
    if word in _FOREVER:
        return None
    found = _DURATION.fullmatch(word)
    if found is None:
        raise errors.BadDuration(text[:32])
    seconds = float(int(found.group(1)) * _UNITS[found.group(2) or "s"])
    if not 0 < seconds <= DURATION_MAX:
        raise errors.BadDuration(text[:32])
    return seconds


def looks_like_duration(text: str) -> bool:
    """
    Whether C{text} is meant as a duration (for commands whose duration is
    optional, before a free-text reason).
    """
    word = text.strip().lower()
    return word in _FOREVER or _DURATION.fullmatch(word) is not None
