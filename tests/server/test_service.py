"""
Tests for L{chatservice.server.service}: the listeners, and what
L{ChatService} does when it starts. (Stopping, signals and reloading are in
C{test_shutdown}.)
"""

from __future__ import annotations

import resource

from twisted.internet import defer, endpoints, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import capturedLogs
from twisted.protocols.basic import LineReceiver
from twisted.trial import unittest

from chatservice.server import tap
from chatservice.server.service import ChatService, raise_open_files_limit
from tests.server.test_options import parse


class ListeningTests(unittest.TestCase):
    """
    The service on real loopback sockets.
    """

    def test_listensAndLogsAddress(self) -> defer.Deferred[None]:
        service = tap.makeService(
            parse(
                "--port",
                "tcp:0:interface=127.0.0.1",
                "--port",
                "tcp:0:interface=127.0.0.1",
            )
        )
        with capturedLogs() as events:
            service.privilegedStartService()
            service.startService()
        self.addCleanup(service.stopService)

        addresses = [
            event["address"]
            for event in events
            if event.get("log_format") == "{what} server listening on {address}"
            and event.get("what") == "Chat"
        ]
        self.assertEqual(len(addresses), 2)
        self.assertEqual({a.host for a in addresses}, {"127.0.0.1"})
        self.assertNotEqual(addresses[0].port, addresses[1].port)

        class Greeted(LineReceiver):
            delimiter = b"\r\n"

            def __init__(self) -> None:
                self.greeting: defer.Deferred[bytes] = defer.Deferred()

            def lineReceived(self, line: bytes) -> None:
                if not self.greeting.called:
                    self.greeting.callback(line)
                    self.transport.loseConnection()  # type: ignore[union-attr]

        async def greetings() -> None:
            for address in addresses:
                endpoint = endpoints.TCP4ClientEndpoint(
                    reactor, "127.0.0.1", address.port
                )
                client = await endpoints.connectProtocol(endpoint, Greeted())
                line = await client.greeting
                self.assertTrue(line.startswith(b"*** Welcome to chatservice, "))

        return defer.Deferred.fromCoroutine(greetings())

    def test_portInUseFailsAtStartup(self) -> None:
        """
        A port that cannot be bound stops startup with an error rather than
        leaving the server running without it.
        """
        taken = reactor.listenTCP(
            0, Factory.forProtocol(Protocol), interface="127.0.0.1"
        )
        self.addCleanup(taken.stopListening)
        address = taken.getHost()
        assert isinstance(address, IPv4Address)
        port = address.port
        service = tap.makeService(parse("--port", f"tcp:{port}:interface=127.0.0.1"))
        self.assertRaises(CannotListenError, service.privilegedStartService)


class OpenFilesLimitTests(unittest.SynchronousTestCase):
    """
    Each client is a file descriptor: the server raises its soft limit on
    open files to the hard limit when it starts, and logs the figure.
    """

    def setUp(self) -> None:
        self.original = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, self.original)

    def test_raised_to_hard_limit(self) -> None:
        soft, hard = self.original
        if hard == resource.RLIM_INFINITY:
            raise unittest.SkipTest("no finite hard limit to raise to")
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        self.assertEqual(raise_open_files_limit(), hard)
        self.assertEqual(resource.getrlimit(resource.RLIMIT_NOFILE), (hard, hard))

    def test_logged_when_the_service_starts(self) -> None:
        service = ChatService()
        with capturedLogs() as events:
            service.startService()
        self.addCleanup(service.stopService)
        figures = [e["limit"] for e in events if "limit" in e]
        self.assertEqual(figures, [resource.getrlimit(resource.RLIMIT_NOFILE)[0]])
