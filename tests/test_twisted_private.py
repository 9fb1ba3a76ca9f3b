"""
Tests for L{chatservice._twisted_private}: one for each private attribute of
Twisted that chatservice reads, so that a Twisted release that renames one
fails here, by name, rather than somewhere that uses it.
"""

from __future__ import annotations

from twisted.internet import tcp
from twisted.internet.abstract import FileDescriptor
from twisted.internet.testing import MemoryReactor
from twisted.trial import unittest

from chatservice._twisted_private import has_buffered


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
