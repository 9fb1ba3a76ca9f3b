"""
WebSocket frames the server writes itself, so that one encoding serves
every recipient.

A frame from server to client is not masked (RFC 6455, section 5.1) and
this server negotiates no extension, so the frame that carries a given
message is the same bytes for every connection. L{twisted.web.websocket}
only offers C{sendTextMessage(str)}, which has wsproto encode the text and
build the frame again for each connection: for a line fanned out to a
thousand browsers, a thousand encodings of the same JSON. The renderer
builds the frame once with L{text_frame} and the session writes those bytes
to the connection's transport, as every other front end does.
"""

from __future__ import annotations

# Close codes (RFC 6455, section 7.4.1).
NORMAL = 1000
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013

# FIN set, opcode 1 (text).
_TEXT = 0x81


def text_frame(payload: bytes) -> bytes:
    """
    The one unfragmented, unmasked text frame that carries C{payload},
    which must be UTF-8.
    """
    size = len(payload)
    if size < 126:
        return bytes((_TEXT, size)) + payload
    if size < 0x10000:
        return bytes((_TEXT, 126)) + size.to_bytes(2, "big") + payload
    return bytes((_TEXT, 127)) + size.to_bytes(8, "big") + payload
