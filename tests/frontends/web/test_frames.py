"""
Tests for L{chatservice.frontends.web.frames}: the frames the server
builds once are the ones wsproto would build for each connection.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from wsproto import Connection, ConnectionType
from wsproto.events import TextMessage

from chatservice.frontends.web.frames import text_frame


class TextFrameTests(SynchronousTestCase):
    def test_sameAsWsproto(self) -> None:
        """
        For each size of length field (7 bits, 16 bits, 64 bits), at the
        edges, the frame is byte for byte wsproto's server frame.
        """
        for size in (0, 1, 125, 126, 127, 0xFFFF, 0x10000, 70000):
            text = "é" * (size // 2) + "x" * (size % 2)
            payload = text.encode("utf-8")
            wsproto = Connection(ConnectionType.SERVER).send(TextMessage(text))
            self.assertEqual(text_frame(payload), wsproto, size)

    def test_readByAClient(self) -> None:
        """A client reads the frame back as the one message it carries."""
        client = Connection(ConnectionType.CLIENT)
        client.receive_data(text_frame(b'{"type":"said"}'))
        (event,) = list(client.events())
        assert isinstance(event, TextMessage)
        self.assertEqual(event.data, '{"type":"said"}')
        self.assertTrue(event.message_finished)
