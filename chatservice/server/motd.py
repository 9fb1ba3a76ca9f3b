"""
C{--motd FILE}: the operator's message of the day, read from a text file.

The file is the operator's, but it goes to every client's terminal, so it
is cleaned like any chat line: invalid UTF-8 is replaced, escape sequences
and control characters are removed. It is bounded, so that a wrong path (a
log file, say) cannot make every welcome megabytes long.
"""

from __future__ import annotations

from chatservice.core import sanitize
from chatservice.server.small_files import SmallFileError, read_small

MAX_BYTES = 16 * 1024
MAX_LINES = 100


class MotdError(SmallFileError):
    """The message of the day cannot be used; the text says why."""


def read_motd(path: str) -> list[str]:
    """
    The lines of the file at C{path}, ready to send. Blocks: reads a file.
    """
    data = read_small(path, MAX_BYTES, MotdError)
    lines = [sanitize.clean(line.rstrip(b"\r")) for line in data.splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) > MAX_LINES:
        raise MotdError(f"{path} has over {MAX_LINES} lines")
    return lines
