"""
C{--protocol ws}: a WebSocket client of the generator's own, as small as
the measurement needs, on the standard library (the generator avoids
Twisted, whose per-message cost would make it the limit).

Each connection upgrades C{GET /ws} (RFC 6455's handshake, the accept key
checked), sends a C{join} request for L{ROOM} with an C{id}, and is in the
room on that request's C{ok}. Senders then send C{say} requests, one
masked text frame each; receivers get one unmasked text frame per line,
C{{"type":"said","room":...,"nick":...,"text":"payload","time":...}}.

While counting, a read costs one search, for L{MARK}: the payload's own
end marker C{|}, the JSON string's closing quote and the C{time} member's
name that follows it. C{|} is in no other part of a C{said} frame but its
header's length bytes (a length whose low byte is 124), and there C{{}
follows it, so every L{MARK} ends one delivered payload. The mark is that
long for speed: C{bytes.count} steps over the stream by up to a mark's
length at a time, and with a mark of two bytes (C{|"}), whose last byte is
as common in JSON as a quote, counting cost the generator four times what
counting newlines costs for the line protocol, and the generator, not the
server, was then most of a delivery's cost. Before counting, frames are
parsed whole (see L{frames}), so that the stream is at a frame boundary
when counting starts.

A delivered frame's size varies with its C{time} (C{1733212345.1} to
C{1733212345.123}), so the byte check allows each line the sizes
L{delivery_sizes} gives, and C{--checksum}, a byte sum of the stream, is
not offered.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os

from chatservice.bench.errors import BenchError

ROOM = "bench"
PATH = "/ws"
# The end of a delivered payload: its mark, the string's closing quote,
# and the name of the time that follows.
MARK = b'|","time":'
# What follows the payload's mark up to the end of MARK: the framing after
# every payload, as calibration learns it.
EOL = MARK[1:]
# The id of the join request, whose "ok" says a connection is in the room.
JOIN_ID = "bench"
# What a sender's say request holds around its payload.
SAY_HEAD = b'{"type":"say","room":"' + ROOM.encode() + b'","text":"'
SAY_TAIL = b'"}'
# What follows a delivered payload's closing quote: ,"time":T} with T
# from 12 characters (1733212345.1) to 14 (1733212345.123).
TIME_TAIL = (len(b',"time":}') + 12, len(b',"time":}') + 14)

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Opcodes (RFC 6455, section 5.2).
TEXT = 0x1
CLOSE = 0x8
PING = 0x9


def handshake(host: str, port: int) -> tuple[bytes, bytes]:
    """The upgrade request for C{/ws}, and the accept key it must get."""
    key = base64.b64encode(os.urandom(16))
    request = (
        b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    ) % (PATH.encode(), host.encode(), port, key)
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    return request, accept


def upgraded(data: bytes, accept: bytes) -> int:
    """
    Where the frames start in C{data}, which begins with the server's
    answer to L{handshake}, or -1 if the answer is not yet whole; raises
    L{BenchError} if it refused the upgrade or gave the wrong accept key.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return -1
    head = data[:end].decode("latin-1")
    status, *fields = head.split("\r\n")
    if status.split(" ")[1:2] != ["101"]:
        raise BenchError(f"the server refused the WebSocket upgrade: {status}")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (f.partition(":") for f in fields)
    }
    if headers.get("sec-websocket-accept", "").encode() != accept:
        raise BenchError("the server gave the wrong Sec-WebSocket-Accept")
    return end + 4


def header(size: int, masked: bool) -> bytes:
    """A final text frame's header for a payload of C{size} bytes."""
    bit = 0x80 if masked else 0
    if size < 126:
        return bytes((0x80 | TEXT, bit | size))
    if size < 0x10000:
        return bytes((0x80 | TEXT, bit | 126)) + size.to_bytes(2, "big")
    return bytes((0x80 | TEXT, bit | 127)) + size.to_bytes(8, "big")


def key_stream(size: int, key: bytes) -> bytes:
    """The bytes a payload of C{size} is XORed with, masked with C{key}."""
    return (key * (size // 4 + 1))[:size]


def mask(data: bytes, stream: bytes) -> bytes:
    """C{data} XOR C{stream} (as long as it or longer), in C."""
    size = len(data)
    value = int.from_bytes(data, "big") ^ int.from_bytes(stream[:size], "big")
    return value.to_bytes(size, "big")


def client_frame(payload: bytes, key: bytes) -> bytes:
    """C{payload} in one masked text frame, as a client must send it."""
    return (
        header(len(payload), True) + key + mask(payload, key_stream(len(payload), key))
    )


def request(fields: dict[str, str], key: bytes) -> bytes:
    """A JSON request in its client frame."""
    return client_frame(json.dumps(fields, separators=(",", ":")).encode(), key)


def join(key: bytes) -> bytes:
    """The join request, whose C{ok} says a connection is in L{ROOM}."""
    return request({"type": "join", "room": ROOM, "id": JOIN_ID}, key)


def is_joined(message: bytes) -> bool:
    """Whether C{message} (a text frame's payload) answers L{join}."""
    if not message.startswith(b'{"type":"ok"'):
        return False
    try:
        return bool(json.loads(message).get("id") == JOIN_ID)
    except ValueError:
        return False


def refusal(message: bytes) -> str | None:
    """The code of an error event in C{message}, or None."""
    if not message.startswith(b'{"type":"error"'):
        return None
    try:
        return str(json.loads(message).get("code"))
    except ValueError:
        return "?"


def frames(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """
    The whole frames at the start of C{data}, as (opcode, payload), and how
    many bytes they take; a server's frames are never masked.
    """
    found: list[tuple[int, bytes]] = []
    at = 0
    end = len(data)
    while end - at >= 2:
        opcode = data[at] & 0x0F
        second = data[at + 1]
        if second & 0x80:
            raise BenchError("the server sent a masked frame")
        size = second & 0x7F
        start = at + 2
        if size == 126:
            if end - at < 4:
                break
            size = int.from_bytes(data[at + 2 : at + 4], "big")
            start = at + 4
        elif size == 127:
            if end - at < 10:
                break
            size = int.from_bytes(data[at + 2 : at + 10], "big")
            start = at + 10
        if end - start < size:
            break
        found.append((opcode, data[start : start + size]))
        at = start + size
    return found, at


def frame_end(tail: bytes) -> bool:
    """
    Whether C{tail}, what follows a delivery's L{MARK}, is the rest of its
    frame and no more (its time and the object's end): the connection
    ended at a frame's end.
    """
    # TIME_TAIL less the member's name, which the mark ends with.
    shortest, longest = (size - len(b',"time":') for size in TIME_TAIL)
    return (
        shortest <= len(tail) <= longest
        and tail.endswith(b"}")
        and tail[:-1].replace(b".", b"", 1).isdigit()
    )


def delivery_sizes(before: int, length: int) -> tuple[int, int]:
    """
    The fewest and most bytes a delivered frame takes, whose JSON has
    C{before} bytes before a payload of C{length} and the closing quote.
    """
    sizes = []
    for tail in TIME_TAIL:
        body = before + length + 1 + tail
        sizes.append(len(header(body, False)) + body)
    return sizes[0], sizes[1]
