"""
The limits every front end shares, met by IRC clients: one count of
connections for line and IRC users alike, a reader that does not read cut
at the SendQ, and a shutdown said with C{ERROR}.
"""

from __future__ import annotations

from twisted.internet.interfaces import IAddress
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from chatservice.frontends.irc.protocol import IRCFactory
from chatservice.frontends.limits import Limits
from tests.support.memory import Connection, Harness


def irc_factory(harness: Harness) -> IRCFactory:
    """The harness's IRC front end, made on first use."""
    if harness.irc is None:
        harness.connect_irc().lost()
    assert harness.irc is not None
    return harness.irc


def refused(harness: Harness, address: IAddress) -> bytes:
    """
    What an IRC connection from C{address} is told when it is refused; the
    test fails if it is accepted.
    """
    proto = irc_factory(harness).buildProtocol(address)
    assert proto is not None
    transport = StringTransport(peerAddress=address)
    proto.makeConnection(transport)
    harness.turn()
    return transport.value()


def registered(harness: Harness, nick: str) -> Connection:
    client = harness.connect_irc()
    client.send(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n")
    harness.turn()
    client.take()
    return client


class SharedLimitsTests(SynchronousTestCase):
    def test_maxClientsCountsEveryFrontEnd(self) -> None:
        """
        C{--max-clients} counts line and IRC users together: with one of
        each connected, a third is refused, whichever front end it uses,
        and IRC says so with C{ERROR}.
        """
        harness = Harness(Limits(max_clients=2, max_per_ip=0))
        irc_factory(harness)
        harness.connect(harness.address("10.0.0.1"))
        registered(harness, "alice")
        self.assertEqual(harness.admission.connections, 2)
        self.assertEqual(
            refused(harness, harness.address("10.0.0.3")),
            b"ERROR :Closing link: The server is full (2 connections)\r\n",
        )
        self.assertEqual(harness.admission.connections, 2)

    def test_maxPerAddressCountsEveryFrontEnd(self) -> None:
        """
        C{--max-per-ip} counts one address's line and IRC connections
        together.
        """
        harness = Harness(Limits(max_per_ip=2))
        irc_factory(harness)
        harness.connect(harness.address("10.0.0.9"))
        harness.connect_irc(harness.address("10.0.0.9"))
        self.assertIn(
            b"Too many connections from your address (the limit is 2)",
            refused(harness, harness.address("10.0.0.9")),
        )

    def test_sendq(self) -> None:
        """
        An IRC client that reads nothing while a room talks is cut at the
        SendQ: told in the room as a quit, and gone.
        """
        harness = Harness(Limits(sendq=4096, flood_rate=0))
        talker = registered(harness, "talker")
        sleeper = registered(harness, "sleeper")
        talker.send("JOIN #r\r\n")
        sleeper.send("JOIN #r\r\n")
        harness.turn()
        talker.take()
        # The sleeper's transport stops taking data.
        sleeper.transport.producer.pauseProducing()
        for n in range(200):
            talker.send(f"PRIVMSG #r :line {n} {'x' * 80}\r\n")
            harness.turn()
        self.assertFalse(sleeper.connected)
        self.assertIn(":sleeper!sleeper@chatservice QUIT :", "\n".join(talker.take()))

    def test_shutdownSaysError(self) -> None:
        """
        A graceful shutdown tells IRC clients with C{ERROR} and closes them.
        """
        harness = Harness(Limits(flood_rate=0))
        client = registered(harness, "alice")
        harness.shut_down(0)
        harness.turn()
        self.assertIn(
            "ERROR :Closing link: My.Little.Server is shutting down", client.take()
        )
