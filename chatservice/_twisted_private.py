"""
The private attributes of Twisted that chatservice reads, each behind one
function here, and nowhere else.

Twisted does not promise to keep an attribute whose name starts with an
underscore. Reading it in one place means that a Twisted release that
renames it breaks one function, which C{tests/test_twisted_private.py}
calls directly, rather than a fast path deep in a protocol that might fail
quietly or only under load.

Two are left: the write-through of stream sessions, and the byte count
and message-size limit of web sessions. The TLS listeners, the listener
services and the port checks use public API (L{chatservice.server.tls},
L{chatservice.server.service}, L{chatservice.server.ports}).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import tcp
from twisted.web.http import HTTPChannel


def has_buffered(transport: tcp.Connection) -> bool:
    """
    Whether C{transport} holds data it has not yet written to its socket:
    its buffer, or the pieces written since it last joined them
    (C{_tempDataLen}, private).

    L{FileDescriptor} keeps written data in two places: a list of recent
    writes, counted by C{_tempDataLen}, and C{dataBuffer}, which the list is
    joined into when the socket is writable. Anything in either means that
    bytes sent to the socket directly would overtake them.
    """
    return bool(transport._tempDataLen or transport.dataBuffer)


def watch_websocket_input(
    channel: HTTPChannel,
    wire: object,
    arrived: Callable[[int, int], int],
    first: Callable[[bytes], bytes] | None = None,
) -> None:
    """
    After each chunk of bytes a WebSocket connection upgraded from
    C{channel} reads, call C{arrived(size, partial)} with the chunk's size
    and the size of the message being reassembled, and keep only as much of
    that message as it returns. With C{first}, each chunk goes to it before
    the WebSocket layer, which gets only what it returns.

    L{twisted.web.websocket} reassembles a fragmented message in memory
    with no limit (C{_textBuffer}, C{_bytesBuffer} of its wire protocol,
    private) and hands it over only when it is whole; it swaps the wire
    protocol's C{dataReceived} into the channel's (private
    C{HTTPChannel._protocolUpgradeForWebsockets}). Wrapping that one
    attribute lets the front end count bytes and stop a client that sends
    an endless message, without copying the WebSocket layer.
    """
    receive = channel.dataReceived
    text = wire._textBuffer  # type: ignore[attr-defined]
    binary = wire._bytesBuffer  # type: ignore[attr-defined]

    def dataReceived(data: bytes) -> None:
        size = len(data)
        if first is not None:
            data = first(data)
        if data:
            receive(data)
        partial = len(text.data) or len(binary.data)
        if arrived(size, partial) < partial:
            text.data = text.data[0:0]
            binary.data = binary.data[0:0]

    channel.dataReceived = dataReceived  # type: ignore[method-assign]
