"""
IRCv3 message tags (C{@name=value;... } before a line): reading a client's,
writing the server's, and their escaping.

A client's tags are at most L{CLIENT_TAGS_MAX} bytes and the rest of its line
at most 510, each measured apart, as the message-tags specification says.
Only client-only tags (C{+name}) are passed on to other clients; the rest
(C{label}) are for the server.
"""

from __future__ import annotations

import itertools
import time

# Bytes of a client's tags, without the leading C{@} and the space after.
CLIENT_TAGS_MAX = 4094

_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPES = str.maketrans(
    {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}
)


def unescape(value: str) -> str:
    """A tag's value as the client meant it."""
    if "\\" not in value:
        return value
    out = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append(_UNESCAPES.get(following, following))
        else:
            out.append(char)
    return "".join(out)


def escape(value: str) -> str:
    """A tag's value as written on the wire."""
    return value.translate(_ESCAPES)


def parse(text: str) -> dict[str, str]:
    """
    The tags of C{text} (what follows the C{@}, without it), by name, the
    values unescaped; a later tag of the same name wins.
    """
    tags = {}
    for item in text.split(";"):
        if not item:
            continue
        name, _, value = item.partition("=")
        if name:
            tags[name] = unescape(value)
    return tags


def client_only(tags: dict[str, str]) -> str:
    """
    The client-only tags of C{tags}, written as a server passes them on
    (C{+a=b;+c}), or C{""}.
    """
    return ";".join(
        name + ("=" + escape(value) if value else "")
        for name, value in tags.items()
        if name.startswith("+")
    )


def add(line: bytes, tags: bytes) -> bytes:
    """
    C{line} (one line, with or without tags) with C{tags} (C{a=b;c}) first.
    """
    if line.startswith(b"@"):
        return b"@" + tags + b";" + line[1:]
    return b"@" + tags + b" " + line


def iso(when: float) -> str:
    """C{when} as server-time writes it: ISO 8601, UTC, milliseconds."""
    millis = int(when * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{millis:03d}Z"


_batches = itertools.count(1)


def batch_id() -> str:
    """A batch reference no other batch of this process has."""
    return f"b{next(_batches):x}"
