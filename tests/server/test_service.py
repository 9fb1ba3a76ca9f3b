"""
Tests for L{chatservice.server.service}: the listeners, and what
L{ChatService} does when it starts. (Stopping, signals and reloading are in
C{test_shutdown}.)
"""

from __future__ import annotations

import errno
import resource
import socket
import sys
from typing import Any, cast

from twisted.internet import defer, endpoints, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import LogEvent, capturedLogs
from twisted.protocols.basic import LineReceiver
from twisted.trial import unittest

from chatservice.server import tap
from chatservice.server.service import (
    SWITCH_INTERVAL,
    ChatService,
    Listener,
    raise_open_files_limit,
    shorten_thread_switches,
)
from tests.server.test_options import parse
from tests.support.helpers import capture_events, deferred_test, with_format


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


class ThreadSwitchTests(unittest.SynchronousTestCase):
    """
    The server lets its reactor thread have the GIL back from a worker
    thread (the database's) within L{SWITCH_INTERVAL}.
    """

    def setUp(self) -> None:
        self.addCleanup(sys.setswitchinterval, sys.getswitchinterval())

    def test_shortened(self) -> None:
        sys.setswitchinterval(0.005)
        self.assertEqual(shorten_thread_switches(), SWITCH_INTERVAL)
        self.assertEqual(sys.getswitchinterval(), SWITCH_INTERVAL)

    def test_neverLengthened(self) -> None:
        """
        A process that already switches more often keeps its interval.
        """
        sys.setswitchinterval(SWITCH_INTERVAL / 2)
        self.assertEqual(shorten_thread_switches(), SWITCH_INTERVAL / 2)

    def test_whenTheServiceStarts(self) -> None:
        sys.setswitchinterval(0.005)
        service = ChatService()
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(sys.getswitchinterval(), SWITCH_INTERVAL)


class SlowEndpoint:
    """
    An endpoint that listens when the test says so, or fails to.
    """

    def __init__(self) -> None:
        self.listening: defer.Deferred[object] | None = None

    def listen(self, factory: object) -> defer.Deferred[object]:
        self.listening = defer.Deferred()
        return self.listening


class ListenerTests(unittest.TestCase):
    """
    L{Listener} on loopback: listening early, at start, once; logging its
    address when it starts; stopping.
    """

    def listener(self, endpoint: object | None = None) -> Listener:
        if endpoint is None:
            endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        listener = Listener(
            "Chat", "--port tcp:0", cast(Any, endpoint), Factory.forProtocol(Protocol)
        )
        self.addCleanup(listener.stopService)
        return listener

    def announced(self, events: list[LogEvent]) -> list[LogEvent]:
        return with_format(events, "{what} server listening on {address}")

    def test_bindEarlyAnnounceAtStart(self) -> None:
        """
        Bound before the service starts (as twistd has it), the listener
        listens at once but logs its address only when it starts, once.
        """
        events = capture_events(self)
        listener = self.listener()
        listener.bind()
        listener.bind()
        self.assertEqual(self.announced(events), [])
        listener.privilegedStartService()
        listener.startService()
        [event] = self.announced(events)
        self.assertEqual(event["what"], "Chat")
        address = event["address"]
        # The port is really open.
        socket.create_connection((address.host, address.port), timeout=5).close()

    def test_startWithoutPrivileged(self) -> None:
        events = capture_events(self)
        listener = self.listener()
        listener.startService()
        self.assertEqual(len(self.announced(events)), 1)

    def test_portInUse(self) -> None:
        """
        A port that cannot be had raises at once, and leaves the listener
        with nothing to stop.
        """
        taken = reactor.listenTCP(
            0, Factory.forProtocol(Protocol), interface="127.0.0.1"
        )
        self.addCleanup(taken.stopListening)
        port = cast(IPv4Address, taken.getHost()).port
        listener = self.listener(
            endpoints.TCP4ServerEndpoint(reactor, port, interface="127.0.0.1")
        )
        error = self.assertRaises(CannotListenError, listener.bind)
        self.assertEqual(error.socketError.errno, errno.EADDRINUSE)
        self.assertIsNone(self.successResultOf(listener.stopService()))

    async def stopped(self, listener: Listener, address: IPv4Address) -> None:
        await listener.stopService()
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection((address.host, address.port), timeout=5)

    @deferred_test
    async def test_stopCloses(self) -> None:
        events = capture_events(self)
        listener = self.listener()
        listener.startService()
        [event] = self.announced(events)
        await self.stopped(listener, event["address"])

    @deferred_test
    async def test_slowEndpoint(self) -> None:
        """
        An endpoint that takes its time does not raise from L{bind}: its
        address is logged when it listens.
        """
        events = capture_events(self)
        endpoint = SlowEndpoint()
        listener = self.listener(endpoint)
        listener.startService()
        self.assertEqual(self.announced(events), [])
        assert endpoint.listening is not None
        port = reactor.listenTCP(
            0, Factory.forProtocol(Protocol), interface="127.0.0.1"
        )
        endpoint.listening.callback(port)
        [event] = self.announced(events)
        await self.stopped(listener, event["address"])

    def test_slowEndpointFails(self) -> None:
        """
        A failure that comes later is logged, naming the listener.
        """
        events = capture_events(self)
        endpoint = SlowEndpoint()
        listener = self.listener(endpoint)
        listener.startService()
        assert endpoint.listening is not None
        endpoint.listening.errback(CannotListenError("127.0.0.1", 1, OSError(98)))
        [failed] = with_format(events, "{what} server cannot listen: {source}")
        self.assertEqual(failed["source"], "--port tcp:0")
        self.assertEqual(self.announced(events), [])
        self.flushLoggedErrors(CannotListenError)

    def test_stopWhileWaiting(self) -> None:
        """
        Stopping before a slow endpoint listens cancels it, quietly.
        """
        events = capture_events(self)
        endpoint = SlowEndpoint()
        listener = self.listener(endpoint)
        listener.startService()
        self.successResultOf(listener.stopService())
        assert endpoint.listening is not None
        self.assertTrue(endpoint.listening.called)
        self.assertEqual(
            with_format(events, "{what} server cannot listen: {source}"), []
        )
