"""
Standard input and output (L{chatservice.client.console}): the piped
L{Terminal}, the L{InteractiveTerminal} and the L{Console} that picks one.
"""

from __future__ import annotations

import io
import sys

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from chatservice.client.connection import ServerConnection
from chatservice.client.console import Console, InteractiveTerminal, Terminal
from chatservice.client.terminal import Display
from tests.client.helpers import HalfCloseableTransport


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


class FakeLink:
    def __init__(self) -> None:
        self.sent = b""
        self.ended = 0
        self.closed = 0

    def send(self, data: bytes) -> None:
        self.sent += data

    def end_input(self) -> None:
        self.ended += 1

    def close(self) -> None:
        self.closed += 1


class InteractiveTerminalTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.link = FakeLink()
        self.written: list[bytes] = []
        self.terminal = InteractiveTerminal(
            self.link, Display(self.written.append, lambda: 80)
        )
        self.terminal.makeConnection(StringTransport())

    def test_lines_are_sent_whole(self) -> None:
        self.terminal.dataReceived(b"hel")
        self.assertEqual(self.link.sent, b"")
        self.terminal.dataReceived(b"lo\x7f\x7flo\rsecond\r")
        self.assertEqual(self.link.sent, b"hello\nsecond\n")
        # Keys read together are shown together: the line as entered.
        self.assertEqual(b"".join(self.written), b"hello\nsecond\n")
        self.terminal.dataReceived(b"ab\x7f")
        self.assertEqual(b"".join(self.written)[-1:], b"a")

    def test_quit(self) -> None:
        self.terminal.dataReceived(b"/quit bye\r")
        self.assertTrue(self.terminal.ended)
        self.assertEqual(self.link.ended, 0)

    def test_ctrl_d(self) -> None:
        self.terminal.dataReceived(b"x\x04")
        self.assertEqual(self.link.ended, 0)
        self.terminal.dataReceived(b"\x7f\x04")
        self.assertTrue(self.terminal.ended)
        self.assertEqual(self.link.ended, 1)
        # The real end of input later does not end it twice.
        self.terminal.readConnectionLost()
        self.assertEqual(self.link.ended, 1)

    def test_ctrl_l(self) -> None:
        self.terminal.dataReceived(b"ab\x0c")
        self.assertTrue(b"".join(self.written).endswith(b"\x1b[H\x1b[2Jab"))


class FakeStdio:
    """
    Standard input and output for a L{Console}, in memory.
    """

    def __init__(self, protocol: Protocol, reactor: object) -> None:
        self.protocol = protocol
        self.written = b""
        self.closed = False
        protocol.makeConnection(StringTransport())

    def write(self, data: bytes) -> None:
        self.written += data

    def loseConnection(self) -> None:
        self.closed = True
        self.protocol.connectionLost(Failure(ConnectionDone()))


class ConsoleTests(unittest.SynchronousTestCase):
    def test_piped(self) -> None:
        """
        On pipes, output is written as it comes and input is passed on as
        it is read, byte for byte.
        """
        stdio: list[FakeStdio] = []

        def factory(protocol: Protocol, reactor: object) -> FakeStdio:
            stdio.append(FakeStdio(protocol, reactor))
            return stdio[-1]

        link = FakeLink()
        console = Console(
            MemoryReactor(),
            link,
            interactive=False,
            stdio_factory=factory,  # type: ignore[arg-type]
        )
        self.assertIsNone(console.display)
        console.output(b"partial output")
        console.terminal.dataReceived(b"typed\x7f")
        self.assertEqual(stdio[0].written, b"partial output")
        self.assertEqual(link.sent, b"typed\x7f")
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        console.complain("note")
        self.assertEqual(stderr.getvalue(), "chat-client: note\n")
        closing = Deferred.fromCoroutine(console.close())
        self.assertIsNone(self.successResultOf(closing))
        self.assertTrue(stdio[0].closed)
