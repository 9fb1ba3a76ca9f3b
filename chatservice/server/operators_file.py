"""
C{--operators-file FILE}: the accounts that are server operators, one a
line, re-read on SIGHUP so that an operator can be added or removed
without a restart.

Blank lines are ignored, and so is everything from a C{#} to the end of
its line (nicknames cannot hold one). Each name must be a valid nickname;
a file with one that is not is refused whole, naming the line, rather than
half read. Bounded, so that a wrong path (a log file) is refused rather
than read.
"""

from __future__ import annotations

from chatservice.core import names
from chatservice.server.small_files import SmallFileError, read_small

MAX_BYTES = 64 * 1024


class OperatorsFileError(SmallFileError):
    """The operators file cannot be used; the text says why."""


def read_operators(path: str) -> list[str]:
    """
    The account names the file at C{path} lists. Blocks: reads a file.
    """
    data = read_small(path, MAX_BYTES, OperatorsFileError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OperatorsFileError(f"{path} is not UTF-8 text") from None
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        name = line.partition("#")[0].strip()
        if not name:
            continue
        try:
            found.append(names.nickname(name))
        except names.InvalidName as e:
            raise OperatorsFileError(
                f"{path}, line {number}: {name!r} is not an account name: {e}"
            ) from None
    return found
