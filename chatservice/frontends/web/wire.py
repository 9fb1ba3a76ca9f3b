"""
Reading a web client's frames without wsproto while they are the common
kind: whole, masked, final text frames of a sane size.

wsproto parses every frame in pure Python, through a generator, a buffer
object and an unmasker that steps byte by byte: at the web benchmark's
rates that was a third of the server's time, more than the chat itself.
L{FastFrames} reads the frames a client sends nearly always (one text
message a frame, RFC 6455's masking, no extension, this server negotiates
none) at one integer XOR and one UTF-8 check each, and hands a read's
messages to the session together, so that a run of C{say} requests becomes
one call to the chat. At the first frame it does not take (a control frame
such as C{close} or C{ping}, a fragment, a binary or unmasked frame, one
over L{FastFrames.largest}, invalid UTF-8) it hands that frame and
everything after it to wsproto for good, which answers as the protocol
says (a pong, the close handshake, a close with the right code). wsproto
has then seen no frame before, so its state is where the stream is: a
client sends no frame before the server's handshake answer (RFC 6455,
section 4.1), so every frame comes through here.
"""

from __future__ import annotations

from collections.abc import Callable

# FIN set, opcode 1 (text), no reserved bits.
_TEXT = 0x81
_MASKED = 0x80


class FastFrames:
    """
    One connection's frames, read here while they are the common kind.

    @param deliver: called with the messages of a read, in order, as
        UTF-8 bytes.
    @param largest: the largest payload taken here, in bytes; a larger
        frame goes to wsproto, whose size limit applies.
    """

    __slots__ = ("active", "buffer", "deliver", "largest")

    def __init__(
        self, deliver: Callable[[list[bytes | None]], None], largest: int
    ) -> None:
        self.deliver = deliver
        self.largest = largest
        self.active = True
        # An incomplete frame, kept for the next read.
        self.buffer = b""

    def __call__(self, data: bytes) -> bytes:
        """
        Take what C{data} holds of the common kind; return what is left to
        wsproto (nothing while every frame is of that kind).
        """
        if not self.active:
            return data
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        messages: list[bytes | None] = []
        at = 0
        end = len(data)
        largest = self.largest
        handed = False
        while at < end:
            if data[at] != _TEXT:
                handed = True
                break
            if end - at < 2:
                break
            size = data[at + 1] ^ _MASKED
            if size & _MASKED:
                # Not masked: a protocol error, wsproto's to answer.
                handed = True
                break
            start = at + 6
            if end < start:
                break
            if size == 126:
                start = at + 8
                if end < start:
                    break
                size = int.from_bytes(data[at + 2 : at + 4], "big")
            elif size == 127:
                handed = True
                break
            if size > largest:
                handed = True
                break
            stop = start + size
            if stop > end:
                break
            key = data[start - 4 : start]
            stream = (key * (size // 4 + 1))[:size]
            text = (
                int.from_bytes(data[start:stop], "big") ^ int.from_bytes(stream, "big")
            ).to_bytes(size, "big")
            if not text.isascii():
                try:
                    text.decode("utf-8")
                except UnicodeDecodeError:
                    handed = True
                    break
            messages.append(text)
            at = stop
        if handed:
            self.active = False
            rest = data[at:]
        else:
            self.buffer = data[at:]
            rest = b""
        if messages:
            self.deliver(messages)
        return rest
