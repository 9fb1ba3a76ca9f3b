"""
Unit tests for L{chatservice.client.cli}, in memory.
"""

from __future__ import annotations

import io
import sys

from twisted.internet import endpoints
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial import unittest

from chatservice.client import cli as client
from chatservice.client.cli import Options, ServerConnection, Terminal


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


class OptionsTests(unittest.SynchronousTestCase):
    def test_defaults(self) -> None:
        self.assertEqual(parse().endpoint, "tcp:host=127.0.0.1:port=12345")

    def test_host(self) -> None:
        self.assertEqual(
            parse("chat.example.org").endpoint, "tcp:host=chat.example.org:port=12345"
        )

    def test_host_and_port(self) -> None:
        self.assertEqual(
            parse("chat.example.org", "6000").endpoint,
            "tcp:host=chat.example.org:port=6000",
        )

    def test_ipv6_host_is_quoted(self) -> None:
        options = parse("::1", "7000")
        self.assertEqual(options.endpoint, r"tcp:host=\:\:1:port=7000")
        endpoint = endpoints.clientFromString(MemoryReactor(), options.endpoint)
        self.assertEqual((endpoint._host, endpoint._port), ("::1", 7000))

    def test_connect(self) -> None:
        for flag in ("--connect", "-c"):
            self.assertEqual(
                parse(flag, "unix:path=/tmp/chat.sock").endpoint,
                "unix:path=/tmp/chat.sock",
            )
        self.assertEqual(
            parse("--connect=tcp:host=127.0.0.1:port=1").endpoint,
            "tcp:host=127.0.0.1:port=1",
        )

    def test_connect_and_host(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            parse("--connect", "tcp:host=127.0.0.1:port=1", "127.0.0.1")
        self.assertEqual(str(caught.exception), "give either HOST [PORT] or --connect")

    def test_port_not_a_number(self) -> None:
        for port in ("http", "12a", ""):
            with self.assertRaises(usage.UsageError) as caught:
                parse("127.0.0.1", port)
            self.assertEqual(
                str(caught.exception), f"PORT must be a number, not {port!r}"
            )

    def test_too_many_arguments(self) -> None:
        self.assertRaises(usage.UsageError, parse, "127.0.0.1", "1", "2")

    def test_main_reports_usage_errors(self) -> None:
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        with self.assertRaises(SystemExit) as caught:
            client.main(["127.0.0.1", "port"])
        self.assertEqual(caught.exception.code, 2)
        self.assertTrue(
            stderr.getvalue().startswith(
                "chat-client: PORT must be a number, not 'port'\n"
            ),
            stderr.getvalue(),
        )
        # Followed by the usage text.
        self.assertIn("--connect ENDPOINT", stderr.getvalue())
        self.assertIn("--connect=", stderr.getvalue())


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


class HalfCloseableTransport(StringTransport):
    write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


class TerminalTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.transport = HalfCloseableTransport()
        self.server = ServerConnection()
        self.server.makeConnection(self.transport)
        self.terminal = Terminal(self.server)
        self.terminal.makeConnection(StringTransport())

    def test_input_goes_to_server(self) -> None:
        self.terminal.dataReceived(b"hello\n")
        self.terminal.dataReceived(b"/nick dave\nhalf a li")
        self.terminal.dataReceived(b"ne\n")
        self.assertEqual(self.transport.value(), b"hello\n/nick dave\nhalf a line\n")
        self.assertFalse(self.terminal.ended)
        self.assertFalse(self.transport.write_closed)

    def test_end_of_input_half_closes(self) -> None:
        self.terminal.dataReceived(b"bye\n")
        self.terminal.readConnectionLost()
        self.assertTrue(self.terminal.ended)
        self.assertTrue(self.transport.write_closed)
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.transport.value(), b"bye\n")

    def test_quit(self) -> None:
        self.terminal.dataReceived(b"hello\n/quit\n")
        self.assertTrue(self.terminal.ended)
        self.assertEqual(self.transport.value(), b"hello\n/quit\n")
        # The server, not the client, closes the connection after a /quit.
        self.assertFalse(self.transport.write_closed)
        self.assertFalse(self.transport.disconnecting)

    def test_quit_variants(self) -> None:
        for data in [
            [b"/quit bye now\n"],
            [b"  /QUIT\r\n"],
            [b"/qu", b"it\n"],
            [b"x" * 1000 + b"\n/quit", b"\n"],
        ]:
            terminal = Terminal(self.server)
            for chunk in data:
                terminal.dataReceived(chunk)
            self.assertTrue(terminal.ended, data)

    def test_not_quit(self) -> None:
        for data in [b"/quit", b"/quitter\n", b"//quit\n", b"say /quit\n", b"quit\n"]:
            terminal = Terminal(self.server)
            terminal.dataReceived(data)
            self.assertFalse(terminal.ended, data)

    def test_output_closed(self) -> None:
        """
        When nobody reads the output any more, the connection is closed.
        """
        self.terminal.writeConnectionLost()
        self.assertTrue(self.terminal.ended)
        self.assertTrue(self.transport.disconnecting)

    def test_closed(self) -> None:
        self.assertNoResult(self.terminal.closed)
        self.terminal.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(self.successResultOf(self.terminal.closed))
