"""
Tests for L{chatservice._twisted_private}: one for each private attribute of
Twisted that chatservice reads, so that a Twisted release that renames one
fails here, by name, rather than somewhere that uses it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp
from twisted.internet.abstract import FileDescriptor
from twisted.internet.testing import MemoryReactor
from twisted.trial import unittest
from twisted.web._websocket_impl import _WebSocketWireProtocol, serverBootstrap
from twisted.web.http import HTTPChannel
from wsproto import ConnectionType, WSConnection

from chatservice._twisted_private import has_buffered, watch_websocket_input


class HasBufferedTests(unittest.SynchronousTestCase):
    """
    L{has_buffered} reads C{FileDescriptor._tempDataLen}.
    """

    def transport(self) -> FileDescriptor:
        transport = FileDescriptor(reactor=MemoryReactor())
        transport.connected = True
        return transport

    def test_nothing(self) -> None:
        self.assertFalse(has_buffered(self.transport()))

    def test_writesNotYetJoined(self) -> None:
        """
        Data just written is in the list that C{_tempDataLen} counts, not
        yet in C{dataBuffer}: only the private count shows it.
        """
        transport = self.transport()
        transport.write(b"abc")
        self.assertEqual(transport.dataBuffer, b"")
        self.assertEqual(transport._tempDataLen, 3)
        self.assertTrue(has_buffered(transport))

    def test_buffer(self) -> None:
        transport = self.transport()
        transport.dataBuffer = b"left over"
        self.assertTrue(has_buffered(transport))

    def test_tcpConnections(self) -> None:
        """
        The transports that the stream session writes through are TCP
        connections, which inherit the attribute.
        """
        self.assertTrue(issubclass(tcp.Server, FileDescriptor))


class WatchWebSocketInputTests(unittest.SynchronousTestCase):
    """
    L{watch_websocket_input} wraps the C{dataReceived} that the WebSocket
    upgrade gave the HTTP channel, and reads and empties the wire
    protocol's C{_textBuffer} and C{_bytesBuffer}.
    """

    def wire(self) -> _WebSocketWireProtocol[Any]:
        return _WebSocketWireProtocol(
            WSConnection(ConnectionType.SERVER),
            serverBootstrap,
            object(),  # type: ignore[arg-type]
        )

    def test_buffers(self) -> None:
        """The wire protocol reassembles messages in these two buffers."""
        wire = self.wire()
        self.assertEqual(wire._textBuffer.data, "")
        self.assertEqual(wire._bytesBuffer.data, b"")
        self.assertTrue(hasattr(HTTPChannel, "_protocolUpgradeForWebsockets"))

    def test_watch(self) -> None:
        """
        After each chunk, the watcher is told its size and the partial
        message's; what it says not to keep is thrown away.
        """
        wire = self.wire()
        channel = HTTPChannel()
        received: list[bytes] = []

        def upgraded(data: bytes) -> None:
            received.append(data)
            wire._textBuffer.add("x" * len(data))

        channel.dataReceived = upgraded  # type: ignore[method-assign]
        told: list[tuple[int, int]] = []

        def arrived(size: int, partial: int) -> int:
            told.append((size, partial))
            return partial if partial < 5 else 0

        watch_websocket_input(channel, wire, arrived)
        channel.dataReceived(b"abc")
        self.assertEqual(wire._textBuffer.data, "xxx")
        channel.dataReceived(b"de")
        self.assertEqual(wire._textBuffer.data, "")
        self.assertEqual(received, [b"abc", b"de"])
        self.assertEqual(told, [(3, 3), (2, 5)])
