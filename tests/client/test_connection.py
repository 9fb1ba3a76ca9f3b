"""
One connection to the server (L{chatservice.client.connection}): what is
printed, how input ends, and what the end of the connection means.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import INegotiated
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import directlyProvides

from chatservice.client.connection import ServerConnection, describe_end
from chatservice.client.tls_endpoint import PlainTextReply
from tests.client.helpers import HalfCloseableTransport


class ServerConnectionTests(unittest.SynchronousTestCase):
    def connect(self) -> tuple[ServerConnection, list[bytes]]:
        server = ServerConnection()
        server.makeConnection(StringTransport())
        output: list[bytes] = []
        server.print_to(output.append)
        return server, output

    def test_crlf_becomes_lf(self) -> None:
        server, output = self.connect()
        server.dataReceived(b"*** Welcome\r\n[lobby] <a> hi\r\n")
        self.assertEqual(b"".join(output), b"*** Welcome\n[lobby] <a> hi\n")

    def test_crlf_split_across_chunks(self) -> None:
        server, output = self.connect()
        server.dataReceived(b"one\r")
        server.dataReceived(b"\ntwo\r")
        server.dataReceived(b"\n")
        server.dataReceived(b"\r")
        server.dataReceived(b"\n")
        self.assertEqual(b"".join(output), b"one\ntwo\n\n")

    def test_bytewise(self) -> None:
        server, output = self.connect()
        data = b"a\r\nb\r\r\n\rc\r\n"
        for i in range(len(data)):
            server.dataReceived(data[i : i + 1])
        self.assertEqual(b"".join(output), b"a\nb\r\n\rc\n")

    def test_lone_cr_is_kept(self) -> None:
        server, output = self.connect()
        server.dataReceived(b"x\r")
        server.dataReceived(b"y\r\n")
        self.assertEqual(b"".join(output), b"x\ry\n")

    def test_trailing_cr_at_end_of_connection(self) -> None:
        server, output = self.connect()
        lost: list[None] = []
        server.lost.addCallback(lost.append)
        server.dataReceived(b"last\r")
        self.assertEqual(b"".join(output), b"last")
        server.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(b"".join(output), b"last\r")
        self.assertEqual(lost, [None])
        self.assertTrue(server.reason.check(ConnectionDone))

    def test_reason(self) -> None:
        server, _ = self.connect()
        server.connectionLost(Failure(ConnectionLost("reset")))
        self.assertTrue(server.reason.check(ConnectionLost))
        self.successResultOf(server.lost)

    def test_output_before_print_to_is_buffered(self) -> None:
        server = ServerConnection()
        server.makeConnection(StringTransport())
        server.dataReceived(b"one\r\n")
        server.dataReceived(b"two\r")
        server.dataReceived(b"\nthree")
        output: list[bytes] = []
        server.print_to(output.append)
        self.assertEqual(b"".join(output), b"one\ntwo\nthree")
        server.dataReceived(b"\r\nfour\r\n")
        self.assertEqual(b"".join(output), b"one\ntwo\nthree\nfour\n")
        self.assertEqual(output[:3], [b"one\n", b"two", b"\nthree"])

    def test_end_input_half_closes(self) -> None:
        transport = HalfCloseableTransport()
        server = ServerConnection()
        server.makeConnection(transport)
        server.end_input()
        self.assertTrue(transport.write_closed)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(transport.value(), b"")

    def test_end_input_without_half_close(self) -> None:
        """
        Over a transport that cannot half-close, the end of input is sent
        as a /quit.
        """
        transport = StringTransport()
        self.assertFalse(hasattr(transport, "loseWriteConnection"))
        server = ServerConnection()
        server.makeConnection(transport)
        server.end_input()
        self.assertEqual(transport.value(), b"\n/quit\n")


class TLSTransport(StringTransport):
    """
    A transport that looks like Twisted's TLS one: it is L{INegotiated},
    and (like it) offers a C{loseWriteConnection} that is not TLS's.
    """

    write_closed = False

    def __init__(self) -> None:
        super().__init__()
        directlyProvides(self, INegotiated)

    def loseWriteConnection(self) -> None:
        self.write_closed = True


class ConnectionEndTests(unittest.SynchronousTestCase):
    def connect(self, transport: StringTransport) -> ServerConnection:
        server = ServerConnection()
        server.makeConnection(transport)
        server.print_to(lambda data: None)
        return server

    def test_end_input_over_tls_quits(self) -> None:
        transport = TLSTransport()
        server = self.connect(transport)
        server.end_input()
        self.assertFalse(transport.write_closed)
        self.assertEqual(transport.value(), b"\n/quit\n")

    def test_goodbye_over_tls_closes(self) -> None:
        """
        Over TLS the client closes once the server has said goodbye, rather
        than wait for the server's own close.
        """
        transport = TLSTransport()
        server = self.connect(transport)
        server.dataReceived(b"*** Goodbye.\r")
        self.assertFalse(transport.disconnecting)
        server.dataReceived(b"\n")
        self.assertTrue(transport.disconnecting)
        self.assertTrue(server.said_goodbye)

    def test_goodbye_over_tcp_waits(self) -> None:
        transport = StringTransport()
        server = self.connect(transport)
        server.dataReceived(b"*** Goodbye.\r\n")
        self.assertTrue(server.said_goodbye)
        self.assertFalse(transport.disconnecting)

    def test_nothing_after_loss(self) -> None:
        """
        Input that ends, or output that closes, after the connection is
        gone (the reactor stopping on Ctrl-C) touches nothing.
        """
        transport = StringTransport()
        server = self.connect(transport)
        server.connectionLost(Failure(ConnectionLost()))
        server.send(b"late\n")
        server.end_input()
        server.close()
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)

    def test_said_goodbye(self) -> None:
        for data, expected in [
            (b"*** Goodbye.\r\n", True),
            (b"x\r\n*** Goodbye.\r\n", True),
            (b"[lobby] <a> *** Goodbye.\r\n", False),
            (b"*** Goodbye.\r\nmore\r\n", False),
            (b"*** The server is shutting down. Goodbye.\r\n", False),
            (b"", False),
        ]:
            server = self.connect(StringTransport())
            for i in range(len(data)):
                server.dataReceived(data[i : i + 1])
            self.assertEqual(server.said_goodbye, expected, data)

    def ended(
        self, reason: Exception, data: bytes = b"", tls: str | None = None
    ) -> ServerConnection:
        server = self.connect(StringTransport())
        server.dataReceived(data)
        server.connectionLost(Failure(reason))
        return server

    def test_describe_end(self) -> None:
        lost = ConnectionLost()
        message = f"connection lost: {Failure(lost).getErrorMessage()}"
        for server, ended, expected in [
            (self.ended(ConnectionDone()), True, (0, None)),
            (self.ended(lost, b"*** Goodbye.\r\n"), True, (0, None)),
            (self.ended(lost), True, (1, message)),
            (self.ended(lost, b"*** Goodbye.\r\n"), False, (1, message)),
            (
                self.ended(ConnectionDone()),
                False,
                (1, "the server closed the connection"),
            ),
        ]:
            self.assertEqual(describe_end(server, ended, None), expected)

    def test_describe_end_tls(self) -> None:
        server = self.ended(
            SSL.Error([("SSL routines", "", "certificate verify failed")])
        )
        self.assertEqual(
            describe_end(server, True, "127.0.0.1:6697"),
            (1, "TLS handshake with 127.0.0.1:6697 failed: certificate verify failed"),
        )
        server = self.ended(PlainTextReply("Not TLS."))
        self.assertEqual(
            describe_end(server, True, "127.0.0.1:6697"),
            (
                1,
                "TLS handshake with 127.0.0.1:6697 failed: the server answered "
                'in plain text: "Not TLS."',
            ),
        )
        server = self.ended(ConnectionDone())
        self.assertEqual(describe_end(server, True, "127.0.0.1:6697"), (0, None))
