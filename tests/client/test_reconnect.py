"""
L{chatservice.client.reconnect.ReconnectingLink}, in memory: an endpoint the
test completes by hand and a L{Clock}.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import IProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from chatservice.client.reconnect import ReconnectingLink
from chatservice.client.tls_endpoint import PlainTextReply
from tests.client.helpers import WELCOME, RecordingEndpoint


class LinkTests(unittest.SynchronousTestCase):
    """
    L{ReconnectingLink} with an endpoint the test completes by hand, a
    L{Clock}, and delays of 1 s, 2 s, 3 s, ...
    """

    description = "tcp:host=127.0.0.1:port=6667"

    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoint = RecordingEndpoint()
        self.complaints: list[str] = []
        self.output: list[bytes] = []
        self.link = self.make_link()

    def make_link(self, **kwargs: object) -> ReconnectingLink:
        link = ReconnectingLink(
            self.endpoint,
            self.description,
            self.complaints.append,
            self.clock,
            retry_policy=float,
            **kwargs,  # type: ignore[arg-type]
        )
        link.print_to(self.output.append)
        link.start()
        return link

    def connect(self, *lines: str) -> tuple[IProtocol, StringTransport]:
        """
        Complete the pending attempt; the server says C{lines}.
        """
        protocol, transport = self.endpoint.succeed()
        protocol.dataReceived(b"".join(line.encode() + b"\r\n" for line in lines))
        return protocol, transport

    def lose(self, protocol: IProtocol, reason: Exception | None = None) -> None:
        protocol.connectionLost(Failure(reason or ConnectionDone()))

    def status(self) -> int:
        return self.successResultOf(self.link.done)

    def test_connects_and_relays(self) -> None:
        self.assertNoResult(self.link.connected_once)
        _, transport = self.connect(WELCOME)
        self.assertTrue(self.successResultOf(self.link.connected_once))
        self.assertEqual(b"".join(self.output), WELCOME.encode() + b"\n")
        self.link.send(b"hello\n/nick al")
        self.link.send(b"ice\n")
        self.assertEqual(transport.value(), b"hello\n/nick alice\n")
        self.assertEqual(self.complaints, [])

    def test_reconnects_and_restores(self) -> None:
        protocol, _ = self.connect(
            WELCOME,
            "*** You are now known as alice.",
            "*** Now talking in python (2 members).",
        )
        self.lose(protocol)
        self.assertEqual(
            self.complaints,
            ["connection lost (the server closed the connection); reconnecting..."],
        )
        self.assertEqual(len(self.endpoint.attempts), 1)
        self.clock.advance(0.9)
        self.assertEqual(len(self.endpoint.attempts), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.endpoint.attempts), 2)
        _, transport = self.connect(WELCOME.replace("guest3", "guest8"))
        self.assertEqual(transport.value(), b"/nick alice\n/join python\n")
        self.assertEqual(
            self.complaints[1:],
            [
                "reconnected to tcp:host=127.0.0.1:port=6667; restoring "
                "nickname alice, rooms lobby, python"
            ],
        )
        self.assertNoResult(self.link.done)

    def test_restores_login(self) -> None:
        protocol, transport = self.connect(WELCOME)
        self.link.send(b"/nick alice\n/register wonderland1\n")
        protocol.dataReceived(
            b"*** You are now known as alice.\r\n"
            b"*** alice is registered to you, and you are logged in.\r\n"
        )
        self.lose(protocol, ConnectionLost("reset"))
        self.assertEqual(
            self.complaints,
            [
                "connection lost (Connection to the other side was lost in a "
                "non-clean fashion: reset); reconnecting..."
            ],
        )
        self.clock.advance(1)
        _, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"/login alice wonderland1\n")
        self.assertIn("nickname alice (logging in)", self.complaints[-1])

    def test_failed_attempts(self) -> None:
        self.endpoint.fail(ConnectionRefusedError())
        self.assertEqual(
            self.complaints,
            [
                "cannot connect to tcp:host=127.0.0.1:port=6667: Connection was "
                "refused by other side; trying again in 1.0 s"
            ],
        )
        self.clock.advance(1)
        self.endpoint.fail(ConnectionRefusedError("111: Connection refused"))
        self.assertTrue(self.complaints[-1].endswith("; trying again in 2.0 s"))
        self.clock.advance(2)
        self.assertNoResult(self.link.connected_once)
        self.connect(WELCOME)
        self.assertTrue(self.successResultOf(self.link.connected_once))
        self.assertEqual(len(self.complaints), 2)

    def test_accepted_then_closed_backs_off(self) -> None:
        """
        A server that accepts and closes without a welcome (a full one)
        is retried ever later, and nothing is restored into it; the
        welcome starts the backoff again.
        """
        protocol, _ = self.connect(WELCOME, "*** You are now known as alice.")
        self.lose(protocol)
        for delay in (1.0, 2.0, 3.0):
            self.clock.advance(delay)
            protocol, transport = self.connect(
                "!!! The server is full (1 connections); try again later."
            )
            self.assertEqual(transport.value(), b"")
            self.lose(protocol)
        self.assertEqual(len(self.endpoint.attempts), 4)
        self.clock.advance(3.9)
        self.assertEqual(len(self.endpoint.attempts), 4)
        self.clock.advance(0.1)
        self.assertEqual(len(self.endpoint.attempts), 5)
        self.assertFalse([c for c in self.complaints if c.startswith("reconnected")])
        protocol, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"/nick alice\n")
        self.lose(protocol)
        self.clock.advance(1)
        self.assertEqual(len(self.endpoint.attempts), 6)

    def test_lines_before_the_welcome_wait(self) -> None:
        """
        Lines typed once reconnected but before the server's welcome go
        after the restoring commands.
        """
        protocol, _ = self.connect(WELCOME, "*** You are now known as alice.")
        self.lose(protocol)
        self.clock.advance(1)
        protocol, transport = self.connect()
        self.link.send(b"hello\n")
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(WELCOME.encode() + b"\r\n")
        self.assertEqual(transport.value(), b"/nick alice\nhello\n")

    def test_default_policy(self) -> None:
        """
        Without a policy given, the first retry comes after half a second
        to a second, and no retry waits much more than 30 s.
        """
        self.link = ReconnectingLink(
            self.endpoint, self.description, self.complaints.append, self.clock
        )
        delays = [self.link._policy(attempt) for attempt in range(1, 20)]
        self.assertTrue(0.5 <= delays[0] <= 1.0, delays)
        self.assertTrue(all(delay <= 30.5 for delay in delays), delays)
        self.assertGreaterEqual(delays[-1], 30)

    def test_lines_typed_while_disconnected(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.lose(protocol)
        self.link.send(b"one\ntwo\nthr")
        self.link.send(b"ee\n")
        self.clock.advance(1)
        _, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"one\ntwo\nthree\n")
        self.assertEqual(
            self.complaints[-1],
            "reconnected to tcp:host=127.0.0.1:port=6667; restoring rooms lobby; "
            "sending 3 lines typed meanwhile",
        )

    def test_queue_is_bounded(self) -> None:
        self.link = self.make_link(queue_limit=2)
        protocol, _ = self.endpoint.succeed()
        protocol.dataReceived(WELCOME.encode() + b"\r\n")
        self.lose(protocol)
        self.link.send(b"1\n2\n3\n4\n")
        self.assertEqual(
            self.complaints[1:],
            [
                "2 lines wait to be sent; lines typed from now until reconnected "
                "are dropped"
            ],
        )
        self.clock.advance(1)
        _, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"1\n2\n")
        self.assertTrue(
            self.complaints[-1].endswith("sending 2 lines typed meanwhile (2 dropped)"),
            self.complaints,
        )

    def test_input_ends_while_disconnected(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.lose(protocol)
        self.link.send(b"one\ntwo\n")
        self.link.end_input()
        self.assertEqual(
            self.complaints[-1],
            "input ended while disconnected from tcp:host=127.0.0.1:port=6667; "
            "2 lines not sent",
        )
        self.assertEqual(self.status(), 1)
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), 1)

    def test_input_ends_before_first_connection(self) -> None:
        self.link.end_input()
        self.assertEqual(self.status(), 1)
        self.assertFalse(self.successResultOf(self.link.connected_once))

    def test_quit_while_disconnected(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.lose(protocol)
        self.link.send(b"/quit\n")
        self.assertEqual(self.status(), 0)
        self.assertEqual(len(self.complaints), 1)

    def test_quit_with_unsent_lines(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.lose(protocol)
        self.link.send(b"hello\n/quit\n")
        self.assertEqual(self.status(), 1)
        self.assertEqual(
            self.complaints[-1],
            "quitting while disconnected; 1 line typed meanwhile not sent",
        )

    def test_quit_ends_session(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.link.send(b"/quit\n")
        protocol.dataReceived(b"*** Goodbye.\r\n")
        self.lose(protocol)
        self.assertEqual(self.status(), 0)
        self.assertEqual(self.complaints, [])
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), 1)

    def test_end_of_input_ends_session(self) -> None:
        protocol, transport = self.connect(WELCOME)
        self.link.send(b"last line, no newline")
        self.assertEqual(transport.value(), b"")
        self.link.end_input()
        # StringTransport cannot half-close: the end of input is a /quit.
        self.assertEqual(transport.value(), b"last line, no newline\n/quit\n")
        self.lose(protocol)
        self.assertEqual(self.status(), 0)

    def test_loss_after_end_of_input(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.link.end_input()
        self.lose(protocol, ConnectionLost())
        self.assertEqual(self.status(), 1)
        self.assertEqual(
            self.complaints,
            [
                "connection lost: Connection to the other side was lost in a "
                "non-clean fashion."
            ],
        )

    def test_output_closed(self) -> None:
        protocol, transport = self.connect(WELCOME)
        self.link.close()
        self.assertTrue(transport.disconnecting)
        self.lose(protocol)
        self.assertEqual(self.status(), 0)

    def test_output_closed_while_disconnected(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.lose(protocol)
        self.link.close()
        self.assertEqual(self.status(), 0)

    def test_tls_failure_is_final(self) -> None:
        self.link = self.make_link(tls_server="127.0.0.1:6697")
        protocol, _ = self.endpoint.succeed()
        self.lose(
            protocol, SSL.Error([("SSL routines", "", "certificate verify failed")])
        )
        self.assertEqual(
            self.complaints,
            ["TLS handshake with 127.0.0.1:6697 failed: certificate verify failed"],
        )
        self.assertEqual(self.status(), 1)
        attempts = len(self.endpoint.attempts)
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), attempts)

    def test_plain_text_port_is_final(self) -> None:
        """
        A port that answered TLS in plain text will answer the same way
        next time: the client says what it answered, and stops.
        """
        self.link = self.make_link(tls_server="127.0.0.1:6667")
        protocol, _ = self.endpoint.succeed()
        self.lose(protocol, PlainTextReply("This port speaks plain text."))
        self.assertEqual(
            self.complaints,
            [
                "TLS handshake with 127.0.0.1:6667 failed: the server answered in "
                'plain text: "This port speaks plain text."'
            ],
        )
        self.assertEqual(self.status(), 1)
        attempts = len(self.endpoint.attempts)
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), attempts)

    def test_abandon(self) -> None:
        """
        The client being stopped (Ctrl-C) ends the session quietly, and no
        reconnection is attempted.
        """
        protocol, transport = self.connect(WELCOME)
        self.link.abandon()
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(self.link.done)
        self.lose(protocol, ConnectionLost())
        self.assertEqual(self.status(), 1)
        self.assertEqual(self.complaints, [])
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), 1)

    def test_abandon_while_disconnected(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.lose(protocol)
        self.link.abandon()
        self.link.abandon()
        self.assertEqual(self.status(), 1)
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), 1)

    def test_server_shutting_down(self) -> None:
        protocol, _ = self.connect(WELCOME, "*** The server is shutting down. Goodbye.")
        self.lose(protocol)
        self.assertEqual(
            self.complaints,
            ["connection lost (the server is shutting down); reconnecting..."],
        )

    def test_partial_output_line_ended_at_loss(self) -> None:
        protocol, _ = self.connect(WELCOME)
        protocol.dataReceived(b"[lobby] <bob> cut sh")
        self.lose(protocol)
        self.assertTrue(b"".join(self.output).endswith(b"<bob> cut sh\n"))

    def test_lost_while_restoring(self) -> None:
        """
        A connection lost before the restored session was confirmed: the
        next one restores the original session, not the half-restored one.
        """
        protocol, _ = self.connect(
            WELCOME,
            "*** You are now known as alice.",
            "*** Now talking in python (1 member).",
        )
        self.lose(protocol)
        self.clock.advance(1)
        protocol, transport = self.connect(WELCOME, "*** You are now known as alice.")
        self.assertEqual(transport.value(), b"/nick alice\n/join python\n")
        self.lose(protocol)
        self.clock.advance(1)
        protocol, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"/nick alice\n/join python\n")
        protocol.dataReceived(
            b"*** You are now known as alice.\r\n"
            b"*** Now talking in python (1 member).\r\n"
        )
        # Restored: from now on the session is what the server says.
        protocol.dataReceived(b"*** You left python; now talking in lobby.\r\n")
        self.lose(protocol)
        self.clock.advance(1)
        _, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"/nick alice\n")

    def test_chatting_keeps_restoring(self) -> None:
        """
        Chat lines do not change the session: a restore cut short is still
        completed next time.
        """
        protocol, _ = self.connect(WELCOME, "*** Now talking in python (1 member).")
        self.lose(protocol)
        self.clock.advance(1)
        protocol, transport = self.connect(WELCOME)
        self.link.send(b"hello\n/msg bob hi\n")
        self.lose(protocol)
        self.clock.advance(1)
        _, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"/join python\n")

    def test_typing_supersedes_restoring(self) -> None:
        protocol, _ = self.connect(WELCOME, "*** You are now known as alice.")
        self.lose(protocol)
        self.clock.advance(1)
        protocol, transport = self.connect(WELCOME, "!!! The nickname alice is taken.")
        self.link.send(b"/nick bob\n")
        protocol.dataReceived(b"*** You are now known as bob.\r\n")
        self.lose(protocol)
        self.clock.advance(1)
        _, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"/nick bob\n")
