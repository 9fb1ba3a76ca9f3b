"""
C{--protocol irc}: what a connection says and hears to get into the room
as an IRC client, and the one thing the counting path must still look for.

Each connection registers (C{NICK}, C{USER}, and waits for C{001}), says
whatever C{--irc-send} lines it was given (senders only: they are how a
server's flood throttling is turned off for them, such as ngircd's C{OPER}
and user mode C{+F}), joins L{CHANNEL} and waits for the end of its names
(C{366}). Senders then say C{PRIVMSG #bench :payload}; what receivers get,
C{:nick!user@host PRIVMSG #bench :payload}, is learnt in calibration like
any server's framing, so the checks are the line protocol's.

While counting, a read costs the line protocol's C{count(b"\\n")} and a
search for one byte of L{PING} that no delivered line holds (see
L{probe}): a server's C{PING} is answered, and taken out of the counts, so
that it is neither a delivery nor a reason to be disconnected.
"""

from __future__ import annotations

from chatservice.bench import payload

CHANNEL = b"#bench"
# What a sender says before its payload, and after.
PRIVMSG = b"PRIVMSG " + CHANNEL + b" :"
EOL = b"\r\n"
PING = b"PING "

# Replies that mean a connection cannot get into the room: nickname
# refused or taken, banned, channel full or closed, registration refused.
FATAL = frozenset(
    b"%d" % n for n in (403, 405, 431, 432, 433, 436, 437, 451, 465, 471, 473, 474, 475)
)


def probe(framings: list[bytes]) -> bytes:
    """
    What a read while counting searches for to tell whether it may hold a
    C{PING}: a byte of L{PING} found in none of C{framings} (what the
    server puts around payloads, learnt in calibration) nor in a payload,
    or L{PING} itself if there is none.

    A one-byte search is C{memchr}, some thirty times faster than a search
    for L{PING}, which at 1000x10 (about 100 KB a read) cost the generator
    as much as counting the lines; and whatever holds a C{PING} holds each
    of its bytes, so no C{PING} is missed.
    """
    seen = set(b"".join(framings)) | set(payload.ALPHABET)
    for byte in PING.strip():
        if byte not in seen:
            return bytes([byte])
    return PING


def nick(worker: int, n: int) -> bytes:
    """
    The nickname of connection C{n} of worker C{worker}: unique in a run,
    and at most 9 bytes (RFC 1459's limit) for up to 100 workers and
    100,000 connections each.
    """
    return b"b%d_%d" % (worker, n)


def registration(name: bytes) -> bytes:
    """What a connection says first."""
    return b"NICK %s\r\nUSER %s 0 * :chat-bench\r\n" % (name, name)


def after_welcome(name: bytes, extra: tuple[str, ...]) -> bytes:
    """
    What a connection says on C{001}: the C{--irc-send} lines (C{{nick}} in
    them replaced by its nickname) and the C{JOIN}.
    """
    lines = [line.replace("{nick}", name.decode()).encode() for line in extra]
    return b"".join(line + EOL for line in lines) + b"JOIN " + CHANNEL + EOL


def command(line: bytes) -> tuple[bytes, bytes]:
    """The command (or numeric) of an IRC C{line} and what follows it."""
    line = line.rstrip(b"\r\n")
    if line.startswith(b":"):
        line = line.partition(b" ")[2]
    name, _, rest = line.lstrip(b" ").partition(b" ")
    return name.upper(), rest


def pong(rest: bytes) -> bytes:
    """The answer to a C{PING} whose parameters are C{rest}."""
    return b"PONG " + rest + EOL


def take_pings(
    buf: bytearray, start: int, end: int
) -> tuple[int, int, list[bytes], int]:
    """
    Find the complete C{PING} lines in C{buf[:end]} whose newline is at
    C{start} or after (those a read that ends at C{end}, with the tail of
    the last read before C{start}, has just counted): return how many, how
    many bytes, each line, and where the last one's newline is (-1 if none).
    """
    found = 0
    size = 0
    last = -1
    lines: list[bytes] = []
    at = buf.find(PING, 0, end)
    while at >= 0:
        stop = buf.find(b"\n", at, end)
        if stop < 0:
            break
        if (at == 0 or buf[at - 1] == 10) and stop >= start:
            found += 1
            size += stop + 1 - at
            lines.append(bytes(buf[at : stop + 1]))
            last = stop
        at = buf.find(PING, stop, end)
    return found, size, lines, last
