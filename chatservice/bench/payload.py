"""
The lines the senders say, and how a delivered one is read back.

A payload is C{SSSS QQQQQQQQ TTTTTTTTTTTT CCCC} in hex (sender, sequence
number, send time in microseconds, and a CRC of those), filler chosen by
the sequence number, and C{|}, a byte found nowhere else in a line, before
the newline. Whatever a server puts around it (its framing) is learnt in
calibration; the payload itself must arrive exactly as sent.
"""

from __future__ import annotations

import zlib

HEAD = 24
CHECK = 4
FILL = b"ghijklmnopqrstuv"
MARK = b"|"
MIN_SIZE = HEAD + CHECK + 2
# Every byte a payload can hold: hex digits, the fills and the mark.
ALPHABET = b"0123456789abcdef" + FILL + MARK
# Byte sums are taken modulo the Adler-32 modulus (see byte_sum).
ADLER_MOD = 65521


def fills_for(size: int) -> list[bytes]:
    """What ends the payload of a line of C{size} bytes, by seq % 16."""
    return [bytes([c]) * (size - MIN_SIZE) + MARK for c in FILL]


def payload(sid: int, seq: int, ts: int, fills: list[bytes]) -> bytes:
    """
    The bytes a sender says, without the newline: C{size - 1} of them.
    """
    head = b"%04x%08x%012x" % (sid, seq, ts)
    return head + b"%04x" % (zlib.crc32(head) & 0xFFFF) + fills[seq & 15]


def lines(
    sid: int,
    first: int,
    last: int,
    ts: int,
    fills: list[bytes],
    before: bytes = b"",
    eol: bytes = b"\n",
) -> bytes:
    """
    The lines sender C{sid} says with sequence numbers C{first} up to (not
    including) C{last}, all sent at C{ts}: each C{before}, L{payload} and
    C{eol} (a newline, or for IRC a C{PRIVMSG} and CRLF). This is the
    senders' hot loop, so L{payload} is unrolled in it.
    """
    crc32 = zlib.crc32
    who = b"%04x" % sid
    when = b"%012x" % ts
    parts: list[bytes] = []
    add = parts.append
    ends = [fill + eol for fill in fills]
    for seq in range(first, last):
        head = b"%s%08x%s" % (who, seq, when)
        add(b"%s%s%04x%s" % (before, head, crc32(head) & 0xFFFF, ends[seq & 15]))
    return b"".join(parts)


def byte_sum(data: bytes | memoryview | bytearray) -> int:
    """Sum of C{data}'s bytes modulo 65521, in C."""
    return (zlib.adler32(data) & 0xFFFF) - 1


def read(
    line: bytes, length: int, fills: list[bytes]
) -> tuple[int, int, int, int, int] | None:
    """
    Find the payload of C{length} bytes in a delivered C{line}: return where
    it starts, where its C{|} is, and its sender, sequence number and send
    time, if it is exactly what that sender said; None if it is not.
    """
    end = line.rfind(MARK)
    start = end + 1 - length
    if end < 0 or start < 0:
        return None
    body = line[start : end + 1]
    try:
        sid = int(body[0:4], 16)
        seq = int(body[4:12], 16)
        ts = int(body[12:24], 16)
    except ValueError:
        return None
    if body != payload(sid, seq, ts, fills):
        return None
    return start, end, sid, seq, ts
