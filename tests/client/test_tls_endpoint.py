"""
L{chatservice.client.tls_endpoint}: TLS that tells a plain-text server
apart, in memory, over an endpoint the test completes by hand.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet import ssl
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import INegotiated, IProtocol
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial import unittest

from chatservice.client.tls import describe_tls_failure
from chatservice.client.tls_endpoint import (
    PLAIN_TEXT_GRACE,
    PLAIN_TEXT_LIMIT,
    PlainTextReply,
    TLSClientEndpoint,
    explanation,
)
from chatservice.frontends.line import wire
from tests.client.helpers import Recorder, RecordingEndpoint

REFUSAL = "This port speaks plain text, not TLS; use the TLS port."


class ExplanationTests(unittest.SynchronousTestCase):
    def test_chat_server(self) -> None:
        """
        A chatservice server's refusal comes after its welcome: the error
        line is the explanation.
        """
        received = (
            wire.encode(wire.welcome("guest1", "lobby"))
            + wire.encode(wire.motd_start())
            + wire.encode(wire.error(REFUSAL))
        )
        self.assertEqual(explanation(received), REFUSAL)

    def test_other_servers(self) -> None:
        """
        Any other server's first line says what it is.
        """
        self.assertEqual(
            explanation(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
            "HTTP/1.1 400 Bad Request",
        )
        self.assertEqual(
            explanation(b"\r\n\r\nSSH-2.0-OpenSSH_9.6\r\n"), "SSH-2.0-OpenSSH_9.6"
        )

    def test_nothing_readable(self) -> None:
        self.assertEqual(explanation(b""), "")
        self.assertEqual(explanation(b" \r\n\t\r\n"), "")

    def test_made_printable(self) -> None:
        """
        The server's words go to the user's terminal: no escape sequences,
        no control characters, nothing longer than a line.
        """
        self.assertEqual(
            explanation(b"!!! \x1b[2Jcleared\x07 \xff\r\n"), "[2Jcleared \ufffd"
        )
        long = explanation(b"x" * 1000)
        self.assertEqual(len(long), 200)
        self.assertTrue(long.endswith("xx..."))

    def test_reply(self) -> None:
        self.assertEqual(
            str(PlainTextReply(REFUSAL)),
            f'the server answered in plain text: "{REFUSAL}"',
        )
        self.assertEqual(str(PlainTextReply("")), "the server answered in plain text")
        self.assertEqual(
            describe_tls_failure(Failure(PlainTextReply(REFUSAL)), "h:1"),
            "TLS handshake with h:1 failed: the server answered in plain text: "
            f'"{REFUSAL}"',
        )


class TLSClientEndpointTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.inner = RecordingEndpoint()
        endpoint = TLSClientEndpoint(
            ssl.optionsForClientTLS("localhost"), self.inner, self.clock
        )
        self.recorder = Recorder()
        connecting = endpoint.connect(Factory.forProtocol(lambda: self.recorder))
        self.listener, self.transport = self.inner.succeed()
        self.connected: IProtocol = self.successResultOf(connecting)

    def lose(self) -> None:
        self.listener.connectionLost(Failure(ConnectionDone()))

    def test_connected(self) -> None:
        """
        The connection fires with the application's protocol, over a
        transport that is TLS, and the handshake has begun.
        """
        self.assertIs(self.connected, self.recorder)
        self.assertTrue(INegotiated.providedBy(self.recorder.transport))
        # A TLS handshake record.
        self.assertEqual(self.transport.value()[:1], b"\x16")

    def test_plain_text_server(self) -> None:
        """
        A server that answers in plain text is heard out until it closes,
        none of it is delivered, and the connection ends with what it said.
        """
        self.listener.dataReceived(wire.encode(wire.welcome("guest1", "lobby")))
        self.listener.dataReceived(wire.encode(wire.error(REFUSAL))[:10])
        self.listener.dataReceived(wire.encode(wire.error(REFUSAL))[10:])
        self.assertFalse(self.transport.disconnecting)
        self.assertIsNone(self.recorder.reason)
        self.lose()
        self.assertEqual(self.recorder.data, b"")
        assert self.recorder.reason is not None
        self.assertTrue(self.recorder.reason.check(PlainTextReply))
        self.assertEqual(self.recorder.reason.value.line, REFUSAL)  # type: ignore[union-attr]
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_plain_text_server_that_stays(self) -> None:
        """
        A plain-text server that does not close is given a few seconds to
        explain itself.
        """
        self.listener.dataReceived(b"220 mail.example.org ESMTP\r\n")
        self.clock.advance(PLAIN_TEXT_GRACE - 0.1)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnecting)
        self.lose()
        assert self.recorder.reason is not None
        self.assertEqual(
            self.recorder.reason.value.line,  # type: ignore[union-attr]
            "220 mail.example.org ESMTP",
        )

    def test_plain_text_server_that_goes_on(self) -> None:
        """
        Only so much is kept: past that, the client closes.
        """
        self.listener.dataReceived(b"x" * (PLAIN_TEXT_LIMIT - 1))
        self.assertFalse(self.transport.disconnecting)
        self.listener.dataReceived(b"yy")
        self.assertTrue(self.transport.disconnecting)

    def test_binary_goes_to_tls(self) -> None:
        """
        Bytes that are not text are TLS's to judge, as without this
        endpoint: not a plain-text reply.
        """
        self.listener.dataReceived(b"\x00\x01\x02\x03\x04\x05\x06\x07")
        self.lose()
        assert self.recorder.reason is not None
        self.assertTrue(self.recorder.reason.check(SSL.Error))
        self.assertFalse(self.recorder.reason.check(PlainTextReply))

    def test_closed_without_a_word(self) -> None:
        self.lose()
        assert self.recorder.reason is not None
        self.assertFalse(self.recorder.reason.check(PlainTextReply))
