"""
Tests for L{chatservice.server.reuseport}: the C{reuseport:} endpoint
string, and listeners sharing one port on real loopback sockets.
"""

from __future__ import annotations

import errno
import socket
from typing import Any, cast

from twisted.internet import endpoints, reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import capturedLogs
from twisted.plugin import getPlugins
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from chatservice.server import reuseport, tap
from chatservice.server.options import OptionError, Options, reason
from chatservice.server.reuseport import ReusePortEndpoint, ReusePortParser
from tests.server.test_options import parse
from tests.server.test_tap import taken_port
from tests.support.helpers import deferred_test

# Connections tried before two listeners sharing a port count as not
# sharing it: the kernel hashes each connection to one of them, so all of
# them reaching one has a chance of one in 2**63.
SPREAD_ATTEMPTS = 64


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


class ParseTests(unittest.SynchronousTestCase):
    """
    C{reuseport:PORT[:interface=ADDR][:backlog=N]}, through
    C{endpoints.serverFromString} as the options and C{twistd chat} read it.
    """

    def parsed(self, description: str) -> ReusePortEndpoint:
        endpoint = endpoints.serverFromString(reactor, description)
        assert isinstance(endpoint, ReusePortEndpoint), endpoint
        return endpoint

    def test_plugin(self) -> None:
        """
        Twisted finds the parser among its plugins, under the prefix
        C{reuseport}.
        """
        [found] = [
            p
            for p in getPlugins(IStreamServerEndpointStringParser)
            if p.prefix == "reuseport"
        ]
        self.assertIsInstance(found, ReusePortParser)
        self.assertTrue(verifyObject(IStreamServerEndpointStringParser, found))

    def test_defaults(self) -> None:
        """
        What the string leaves out is what C{tcp:} leaves out: every IPv4
        address, a backlog of 50.
        """
        endpoint = self.parsed("reuseport:12345")
        self.assertTrue(verifyObject(IStreamServerEndpoint, endpoint))
        self.assertEqual(
            (endpoint.reactor, endpoint.port, endpoint.interface, endpoint.backlog),
            (reactor, 12345, "", 50),
        )

    def test_interfaceAndBacklog(self) -> None:
        endpoint = self.parsed("reuseport:0:interface=127.0.0.1:backlog=9")
        self.assertEqual(
            (endpoint.port, endpoint.interface, endpoint.backlog), (0, "127.0.0.1", 9)
        )

    def test_ipv6Interface(self) -> None:
        endpoint = self.parsed(r"reuseport:6667:interface=\:\:1")
        self.assertEqual((endpoint.port, endpoint.interface), (6667, "::1"))

    def test_badValues(self) -> None:
        """
        A bad port or backlog, a missing or second port and an unknown
        option are a C{ValueError} that says what is wrong.
        """
        syntax = "reuseport:PORT[:interface=ADDR][:backlog=N]"
        for description, why in [
            ("reuseport:99999", "port 99999 is not between 0 and 65535"),
            ("reuseport:-1", "port -1 is not between 0 and 65535"),
            ("reuseport:http", "port 'http' is not a number"),
            ("reuseport:", "port '' is not a number"),
            ("reuseport:0:backlog=0", "backlog 0 is less than 1"),
            ("reuseport:0:backlog=many", "backlog 'many' is not a number"),
            ("reuseport:1:2", f"reuseport: takes one port: {syntax}"),
            ("reuseport:1:mode=660", f"reuseport: no option 'mode': {syntax}"),
        ]:
            error = self.assertRaises(
                ValueError, endpoints.serverFromString, reactor, description
            )
            self.assertEqual(str(error), why, description)

    def test_reactorWithoutSockets(self) -> None:
        error = self.assertRaises(
            ValueError, ReusePortParser().parseStreamServer, object(), "0"
        )
        self.assertEqual(str(error), "reuseport: this reactor cannot adopt a socket")

    def test_options(self) -> None:
        """
        Every listening option takes it, and refuses a bad one before
        anything starts.
        """
        options = parse(
            "--port",
            "reuseport:1",
            "--irc-port",
            "reuseport:2",
            "--web",
            "reuseport:3",
            "--metrics",
            "reuseport:4",
        )
        self.assertEqual(
            (options["port"], options["irc-port"], options["web"], options["metrics"]),
            (["reuseport:1"], ["reuseport:2"], ["reuseport:3"], "reuseport:4"),
        )
        error = self.assertRaises(
            OptionError, Options().parseOptions, ["--port", "reuseport:99999"]
        )
        self.assertEqual(
            str(error), "--port reuseport:99999: port 99999 is not between 0 and 65535"
        )


class Named(Protocol):
    """
    Writes its factory's name and hangs up, so that a client can tell which
    listener took its connection.
    """

    factory: NamedFactory

    def connectionMade(self) -> None:
        self.factory.accepted += 1
        assert self.transport is not None
        self.transport.write(self.factory.name)
        self.transport.loseConnection()


class NamedFactory(Factory):
    protocol = Named

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.accepted = 0


class Reader(Protocol):
    """
    Fires C{done} with everything the server sent once it hangs up.
    """

    def __init__(self) -> None:
        self.data = b""
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: object = None) -> None:
        self.done.callback(self.data)


class ListeningTests(unittest.TestCase):
    """
    Listeners on real loopback sockets, in this process.
    """

    def listen(self, description: str, name: bytes) -> IListeningPort:
        """
        Listen on C{description} with a L{NamedFactory} called C{name};
        stop at the end of the test.
        """
        endpoint = endpoints.serverFromString(reactor, description)
        listening = endpoint.listen(NamedFactory(name))
        # It listens at once, as tcp: does.
        port = cast(IListeningPort, self.successResultOf(listening))
        self.addCleanup(port.stopListening)
        return port

    def failure(self, description: str) -> CannotListenError:
        endpoint = endpoints.serverFromString(reactor, description)
        failure = self.failureResultOf(
            endpoint.listen(NamedFactory(b"x")), CannotListenError
        )
        return cast(CannotListenError, failure.value)

    async def whom(self, port: int, host: str = "127.0.0.1") -> bytes:
        """
        The name of the listener that takes a new connection to C{port}.
        """
        kind = (
            endpoints.TCP6ClientEndpoint
            if ":" in host
            else endpoints.TCP4ClientEndpoint
        )
        client = kind(reactor, host, port)
        reader = await endpoints.connectProtocol(client, Reader())
        return await reader.done

    def test_getHost(self) -> None:
        """
        The listening port is Twisted's own, with the address the kernel
        gave it.
        """
        port = self.listen("reuseport:0:interface=127.0.0.1", b"a")
        address = port.getHost()
        assert isinstance(address, IPv4Address)
        self.assertEqual((address.type, address.host), ("TCP", "127.0.0.1"))
        self.assertNotEqual(address.port, 0)

    @deferred_test
    async def test_takenOver(self) -> None:
        """
        A second listener binds the port the first has; once the first
        stops listening, every new connection reaches the second.
        """
        first = self.listen("reuseport:0:interface=127.0.0.1", b"first")
        number = first.getHost().port  # type: ignore[attr-defined]
        self.assertEqual(await self.whom(number), b"first")
        second = self.listen(f"reuseport:{number}:interface=127.0.0.1", b"second")
        self.assertEqual(second.getHost().port, number)  # type: ignore[attr-defined]
        await first.stopListening()
        self.assertEqual([await self.whom(number) for _ in range(10)], [b"second"] * 10)

    @deferred_test
    async def test_bothAccept(self) -> None:
        """
        While both listen, the kernel gives each of them connections.
        """
        first = self.listen("reuseport:0:interface=127.0.0.1", b"first")
        number = first.getHost().port  # type: ignore[attr-defined]
        self.listen(f"reuseport:{number}:interface=127.0.0.1", b"second")
        seen: set[bytes] = set()
        for _ in range(SPREAD_ATTEMPTS):
            seen.add(await self.whom(number))
            if len(seen) == 2:
                break
        self.assertEqual(seen, {b"first", b"second"})

    @deferred_test
    async def test_ipv6(self) -> None:
        if not ipv6_loopback():
            self.skipTest("this machine has no IPv6 loopback")
        first = self.listen(r"reuseport:0:interface=\:\:1", b"first")
        address = first.getHost()
        assert isinstance(address, IPv6Address)
        self.assertEqual(address.host, "::1")
        second = self.listen(rf"reuseport:{address.port}:interface=\:\:1", b"second")
        await first.stopListening()
        self.assertEqual(await self.whom(address.port, "::1"), b"second")
        await second.stopListening()

    def test_plainListenerHolds(self) -> None:
        """
        A port that a listener without C{SO_REUSEPORT} holds (a C{tcp:} one,
        another program's) cannot be shared: a L{CannotListenError} with
        the system's reason, as C{tcp:} gives.
        """
        number = taken_port(self)
        error = self.failure(f"reuseport:{number}:interface=127.0.0.1")
        self.assertEqual((error.interface, error.port), ("127.0.0.1", number))
        self.assertEqual(reason(error), "address already in use")

    def test_twistedTCPHolds(self) -> None:
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        error = self.failure(f"reuseport:{port.getHost().port}:interface=127.0.0.1")
        assert isinstance(error.socketError, OSError)
        self.assertEqual(error.socketError.errno, errno.EADDRINUSE)

    def test_interfaceNotHere(self) -> None:
        """
        An address this host does not have (TEST-NET-1) or that is not an
        address at all fails the same way.
        """
        self.assertEqual(
            reason(self.failure("reuseport:0:interface=192.0.2.1")),
            "cannot assign requested address",
        )
        error = self.failure("reuseport:0:interface=no such host.")
        self.assertIsInstance(error.socketError, OSError)

    def test_noReusePort(self) -> None:
        """
        On a system without C{SO_REUSEPORT} it fails to listen, saying why,
        rather than listen without sharing.
        """
        self.patch(reuseport, "SO_REUSEPORT", None)
        self.assertEqual(
            reason(self.failure("reuseport:0:interface=127.0.0.1")),
            "this system has no SO_REUSEPORT",
        )


class TapTests(unittest.TestCase):
    """
    C{twistd chat}'s listeners take it.
    """

    def test_portInUse(self) -> None:
        """
        Under twistd, a port held without C{SO_REUSEPORT} stops the server
        with the one line that C{tcp:} gets.
        """
        description = f"reuseport:{taken_port(self)}:interface=127.0.0.1"
        options = Options()
        options.parent = cast(Any, {})
        options.parseOptions(["--database", ":memory:", "--port", description])
        error = self.assertRaises(SystemExit, tap.makeService, options)
        self.assertEqual(
            error.code,
            f"twistd chat: --port {description}: cannot listen: address already in use",
        )

    def test_everyListener(self) -> None:
        """
        The chat, IRC and web listeners all listen through it.
        """
        any_port = "reuseport:0:interface=127.0.0.1"
        service = tap.makeService(
            parse("--port", any_port, "--irc-port", any_port, "--web", any_port)
        )
        with capturedLogs() as events:
            service.privilegedStartService()
            service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(
            [type(listener.endpoint) for listener in service.listeners()],
            [ReusePortEndpoint] * 3,
        )
        listening = {
            event["what"]: event["address"]
            for event in events
            if event.get("log_format") == "{what} server listening on {address}"
        }
        self.assertEqual(sorted(listening), ["Chat", "IRC", "Web"])
        for address in listening.values():
            self.assertEqual(address.host, "127.0.0.1")
