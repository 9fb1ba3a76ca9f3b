"""
Turning the bytes of one client line into text that is safe to put on other
people's terminals.

A chat server relays one person's bytes to everyone else's terminal, so a
line could clear screens, retitle windows, write to clipboards (OSC 52) or
reorder the rest of a line (bidirectional overrides). What comes out of
L{clean} has none of that: no C0 or C1 control characters, no DEL, no escape
sequences, no bidirectional embedding, override or isolate characters, and
no telnet negotiation; tabs become spaces.

Most lines are plain printable text, and they take the fast path: one decode
and one C-level C{str.isprintable} check.
"""

from __future__ import annotations

import re

# Telnet: IAC (255) followed by a command. WILL/WONT/DO/DONT take an option
# byte; SB ... IAC SE is a subnegotiation; anything else is one byte.
_TELNET = re.compile(
    rb"\xff(?:[\xfb-\xfe][\x00-\xff]?|\xfa[\x00-\xff]*?(?:\xff\xf0|\Z)|[\x00-\xff]?)"
)

# IRC's colour codes, and terminal escape sequences in their 7-bit (ESC ...)
# and 8-bit (C1) forms:
# CSI (colours, cursor moves), OSC (titles, clipboard, hyperlinks), the
# string commands DCS, SOS, PM and APC, and two-character escapes.
_ESCAPES = re.compile(
    # mIRC colours, with their digits: \x0304red is "red", not "04red".
    r"\x03(?:[0-9]{1,2}(?:,[0-9]{1,2})?)?"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]P X^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)

# What is left to remove after escapes: C0 and C1 controls, DEL, and the
# bidirectional controls that reorder text (embeddings, overrides, isolates).
# Line and paragraph separators could break a line on some terminals.
_UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)


def decode(raw: bytes) -> str:
    """
    Decode one line (without its line ending), dropping telnet negotiation.

    Invalid UTF-8 is replaced with U+FFFD, never passed on. The result is
    not yet safe to show: see L{safe}.
    """
    if b"\xff" in raw:
        raw = _TELNET.sub(b"", raw)
    return raw.decode("utf-8", "replace")


def safe(text: str) -> str:
    """
    C{text} without anything that could act on a terminal.
    """
    if text.isprintable():
        return text
    text = _ESCAPES.sub("", text).replace("\t", " ")
    return _UNSAFE.sub("", text)


def clean(raw: bytes) -> str:
    """
    Decode one line and make it safe to show.
    """
    return safe(decode(raw))
