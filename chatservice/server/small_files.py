"""
Reading the small text files an operator hands the server (the message of
the day, the operators file): whole, and bounded, so that a wrong path (a
log file, say) is refused with one clear line rather than read.
"""

from __future__ import annotations


class SmallFileError(Exception):
    """The file cannot be used; the text says why, naming it."""


def read_small(path: str, limit: int, error: type[SmallFileError]) -> bytes:
    """
    The bytes of the file at C{path}, at most C{limit} of them; else
    C{error} saying why. Blocks: reads a file.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise error(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > limit:
        raise error(f"{path} is over {limit} bytes")
    return data
