"""
What the client's tests share: options parsed, certificate files, an
endpoint completed by hand, a transport and a protocol that record, and the
server's welcome.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import implementer

from chatservice.client.cli import Options
from tests.support.certs import make_certificate
from tests.support.helpers import make_temp_dir

WELCOME = (
    "*** Welcome to chatservice, guest3! You are in lobby. Type /help for commands."
)


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


class CertificateFiles:
    """
    Two self-signed certificates in a temporary directory: C{cert} (the
    server's) and C{other} (someone else's), with C{key}.
    """

    def __init__(self, testcase: unittest.SynchronousTestCase) -> None:
        self.directory = make_temp_dir(testcase)
        self.key, self.cert = make_certificate(self.directory, "server")
        _, self.other = make_certificate(
            self.directory, "other", common_name="someone else"
        )


@implementer(IStreamClientEndpoint)
class RecordingEndpoint:
    """
    An endpoint whose connections the test completes by hand.
    """

    def __init__(self) -> None:
        self.attempts: list[tuple[IProtocolFactory, Deferred[IProtocol]]] = []

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        d: Deferred[IProtocol] = Deferred()
        self.attempts.append((protocolFactory, d))
        return d

    def succeed(
        self, transport: StringTransport | None = None
    ) -> tuple[IProtocol, StringTransport]:
        factory, d = self.attempts[-1]
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 6667))
        assert protocol is not None
        transport = transport or StringTransport()
        protocol.makeConnection(transport)
        d.callback(protocol)
        return protocol, transport

    def fail(self, reason: Exception) -> None:
        _, d = self.attempts[-1]
        d.errback(reason)


class HalfCloseableTransport(StringTransport):
    write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


class Recorder(Protocol):
    """
    An application protocol that keeps what it received, and why its
    connection ended.
    """

    def __init__(self) -> None:
        self.data = b""
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason
