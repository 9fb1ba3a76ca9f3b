"""
Tests for L{chatservice.server.tap} and the C{twistd chat} plugin, including how
the plugin is packaged.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IServiceMaker
from twisted.internet import defer, endpoints, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import capturedLogs
from twisted.plugin import getPlugins
from twisted.protocols.basic import LineReceiver
from twisted.python import usage
from twisted.trial import unittest

from chatservice.frontends.limits import Limits
from chatservice.frontends.line.protocol import LineFactory
from chatservice.server import tap
from chatservice.storage.database import Database

DEFAULT_MAX_LINE = Limits().max_line

TWISTD = Path(sys.executable).parent / "twistd"


def parse(*argv: str) -> tap.Options:
    """
    Options as twistd would parse them; a database in memory unless one is
    given, so that no test leaves a file behind or finds one.
    """
    if not any(arg.startswith("--database") for arg in argv):
        argv = (*argv, "--database", ":memory:")
    options = tap.Options()
    options.parseOptions(list(argv))
    return options


class OptionsTests(unittest.SynchronousTestCase):
    def test_defaults(self) -> None:
        options = parse()
        self.assertEqual(options["port"], [tap.DEFAULT_PORT])
        self.assertEqual(options["max-line"], DEFAULT_MAX_LINE)

    def test_defaultPortIsLoopback(self) -> None:
        """
        Out of the box the server listens on loopback only.
        """
        self.assertIn("interface=127.0.0.1", tap.DEFAULT_PORT)

    def test_severalPorts(self) -> None:
        options = parse(
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--port=tcp:12346:interface=127.0.0.1",
            "-p",
            "unix:/tmp/chat-test.sock",
        )
        self.assertEqual(
            options["port"],
            [
                "tcp:0:interface=127.0.0.1",
                "tcp:12346:interface=127.0.0.1",
                "unix:/tmp/chat-test.sock",
            ],
        )

    def test_portsDoNotLeakBetweenInstances(self) -> None:
        parse("--port", "tcp:0:interface=127.0.0.1")
        self.assertEqual(parse()["port"], [tap.DEFAULT_PORT])

    def test_invalidEndpoint(self) -> None:
        for bad in ["bogus:1234", "tcp:notaport", "tcp", ""]:
            try:
                parse("--port", bad)
            except usage.UsageError:
                continue
            self.fail(f"--port {bad!r} was accepted")

    def test_invalidEndpointMessageNamesIt(self) -> None:
        error = self.assertRaises(usage.UsageError, parse, "--port", "bogus:1234")
        self.assertIn("bogus:1234", str(error))

    def test_floodExempt(self) -> None:
        """
        --flood-exempt takes addresses or CIDR blocks, several times, and
        they reach the factory's limits.
        """
        options = parse(
            "--flood-exempt", "127.0.0.1", "--flood-exempt", "2001:db8::/32"
        )
        limits = tap.limits_from(options)
        self.assertEqual(
            [str(n) for n in limits.flood_exempt], ["127.0.0.1/32", "2001:db8::/32"]
        )
        self.assertRaises(usage.UsageError, parse, "--flood-exempt", "nonsense")

    def test_maxLine(self) -> None:
        options = parse("--max-line", "100")
        self.assertEqual(options["max-line"], 100)
        self.assertIsInstance(options["max-line"], int)
        self.assertEqual(parse("--max-line=1")["max-line"], 1)

    def test_maxLineMustBePositiveInteger(self) -> None:
        for bad in ["0", "-5", "abc", "1.5", ""]:
            try:
                parse("--max-line", bad)
            except usage.UsageError:
                continue
            self.fail(f"--max-line {bad!r} was accepted")

    def test_unknownOption(self) -> None:
        self.assertRaises(usage.UsageError, parse, "--bogus")

    def test_helpMentionsOptions(self) -> None:
        text = str(tap.Options())
        self.assertIn("--port", text)
        self.assertIn("--max-line", text)


class MakeServiceTests(unittest.SynchronousTestCase):
    def listeners(
        self, service: object
    ) -> tuple[list[StreamServerEndpointService], LineFactory]:
        assert isinstance(service, tap.ChatService)
        listeners = [child for child in service if child is not service.database]
        self.assertIsInstance(service.database, Database)
        for listener in listeners:
            self.assertIsInstance(listener, tap.ChatListener)
            self.assertIsInstance(listener, StreamServerEndpointService)
        factories = {id(listener.factory) for listener in listeners}
        self.assertEqual(len(factories), 1)
        factory = listeners[0].factory
        self.assertIsInstance(factory, LineFactory)
        return listeners, factory

    def test_default(self) -> None:
        listeners, factory = self.listeners(tap.makeService(parse()))
        self.assertEqual(len(listeners), 1)
        [listener] = listeners
        self.assertIsInstance(listener.endpoint, endpoints.TCP4ServerEndpoint)
        self.assertEqual(factory.limits.max_line, DEFAULT_MAX_LINE)

    def test_oneListenerPerPortOneFactory(self) -> None:
        options = parse(
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--port",
            "unix:/tmp/chat-test.sock",
            "--max-line",
            "77",
        )
        listeners, factory = self.listeners(tap.makeService(options))
        self.assertEqual(len(listeners), 3)
        self.assertEqual(
            [type(listener.endpoint) for listener in listeners],
            [
                endpoints.TCP4ServerEndpoint,
                endpoints.TCP4ServerEndpoint,
                endpoints.UNIXServerEndpoint,
            ],
        )
        self.assertEqual(factory.limits.max_line, 77)
        # One factory, so one registry: every port shares the rooms.
        self.assertIs(factory.chat, listeners[2].factory.chat)


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


class PluginTests(unittest.SynchronousTestCase):
    def test_pluginFound(self) -> None:
        makers = [
            maker for maker in getPlugins(IServiceMaker) if maker.tapname == "chat"
        ]
        self.assertEqual(len(makers), 1)
        [maker] = makers
        self.assertIs(maker.options, tap.Options)
        self.assertTrue(maker.description)
        self.assertIs(maker.makeService, tap.makeService)


def installed_distribution() -> importlib.metadata.Distribution:
    """
    The chatservice distribution installed in this environment's
    site-packages, never the C{chatservice.egg-info} a source checkout may
    hold (the checkout is often on C{sys.path} while testing).
    """
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    found = list(importlib.metadata.distributions(name="chatservice", path=list(paths)))
    if not found:
        raise unittest.SkipTest("chatservice is not installed in site-packages")
    return found[0]


class PackagingTests(unittest.SynchronousTestCase):
    def test_pluginShipped(self) -> None:
        dist = installed_distribution()
        files = {str(path).replace(os.sep, "/") for path in dist.files or []}
        self.assertIn("twisted/plugins/chat_plugin.py", files)
        plugin = dist.locate_file("twisted/plugins/chat_plugin.py")
        self.assertTrue(Path(str(plugin)).is_file())

    def test_twistedPackageNotShadowed(self) -> None:
        """
        The wheel must not ship C{twisted/__init__.py} or
        C{twisted/plugins/__init__.py}: either would overwrite Twisted's own.
        """
        dist = installed_distribution()
        files = {str(path).replace(os.sep, "/") for path in dist.files or []}
        self.assertNotIn("twisted/__init__.py", files)
        self.assertNotIn("twisted/plugins/__init__.py", files)
        self.assertEqual(
            sorted(f for f in files if f.startswith("twisted/") and f.endswith(".py")),
            ["twisted/plugins/chat_plugin.py"],
        )


class TwistdTests(unittest.SynchronousTestCase):
    """
    The real C{twistd}, run from a directory away from the checkout so that
    only the installed package can be found.
    """

    def twistd(self, *args: str) -> str:
        if not TWISTD.exists():
            raise unittest.SkipTest(f"{TWISTD} not found")
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        result = subprocess.run(
            [str(TWISTD), *args],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 0, output)
        return output

    def test_chatListed(self) -> None:
        output = self.twistd("--help")
        self.assertRegex(output, re.compile(r"^\s+chat\s+\S", re.MULTILINE))

    def test_chatHelp(self) -> None:
        output = self.twistd("chat", "--help")
        self.assertIn("--port", output)
        self.assertIn("--max-line", output)


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
        self.assertEqual(tap.raise_open_files_limit(), hard)
        self.assertEqual(resource.getrlimit(resource.RLIMIT_NOFILE), (hard, hard))

    def test_logged_when_the_service_starts(self) -> None:
        service = tap.ChatService()
        with capturedLogs() as events:
            service.startService()
        self.addCleanup(service.stopService)
        figures = [e["limit"] for e in events if "limit" in e]
        self.assertEqual(figures, [resource.getrlimit(resource.RLIMIT_NOFILE)[0]])


class OperationsOptionsTests(unittest.SynchronousTestCase):
    """
    The options for running the server: --metrics, --log-format,
    --shutdown-grace and --motd.
    """

    def motd_file(self, data: bytes) -> str:
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        path = Path(directory) / "motd.txt"
        path.write_bytes(data)
        return str(path)

    def test_defaults(self) -> None:
        options = parse()
        self.assertIsNone(options["metrics"])
        self.assertEqual(options["log-format"], "text")
        self.assertEqual(options["shutdown-grace"], tap.DEFAULT_SHUTDOWN_GRACE)
        self.assertIsNone(options["motd"])
        self.assertNotIn("motd-lines", options)

    def test_metrics(self) -> None:
        options = parse("--metrics", "tcp:9122:interface=127.0.0.1")
        self.assertEqual(options["metrics"], "tcp:9122:interface=127.0.0.1")

    def test_metricsBadEndpoint(self) -> None:
        for bad in ["bogus:9122", "tcp:notaport", ""]:
            error = self.assertRaises(usage.UsageError, parse, "--metrics", bad)
            self.assertIn("--metrics", str(error))

    def test_metricsDoesNotLeakBetweenInstances(self) -> None:
        parse("--metrics", "tcp:0")
        self.assertIsNone(parse()["metrics"])

    def test_logFormat(self) -> None:
        self.assertEqual(parse("--log-format", "json")["log-format"], "json")
        self.assertEqual(parse("--log-format=text")["log-format"], "text")

    def test_logFormatUnknown(self) -> None:
        error = self.assertRaises(usage.UsageError, parse, "--log-format", "xml")
        self.assertIn("--log-format", str(error))
        self.assertIn("xml", str(error))
        self.assertIn("json", str(error))

    def test_shutdownGrace(self) -> None:
        self.assertEqual(parse("--shutdown-grace", "2.5")["shutdown-grace"], 2.5)
        self.assertEqual(parse("--shutdown-grace", "0")["shutdown-grace"], 0)

    def test_shutdownGraceInvalid(self) -> None:
        for bad in ["-1", "abc", "nan", ""]:
            try:
                parse("--shutdown-grace", bad)
            except usage.UsageError:
                continue
            self.fail(f"--shutdown-grace {bad!r} was accepted")

    def test_motd(self) -> None:
        path = self.motd_file(b"Hello \x1b[1mthere\x1b[0m.\n\n")
        options = parse("--motd", path)
        self.assertEqual(options["motd"], path)
        self.assertEqual(options["motd-lines"], ["Hello there."])

    def test_motdMissing(self) -> None:
        """
        Like a bad database, a file that cannot be used stops twistd with
        one line that names the option and the file, not the usage text.
        """
        path = os.path.join(tempfile.gettempdir(), "no-such-dir-chat", "motd.txt")
        error = self.assertRaises(SystemExit, parse, "--motd", path)
        self.assertEqual(
            str(error.code),
            f"twistd chat: --motd: cannot read {path}: No such file or directory",
        )

    def test_motdTooBig(self) -> None:
        from chatservice.server.motd import MAX_BYTES

        path = self.motd_file(b"x" * (MAX_BYTES + 1))
        error = self.assertRaises(SystemExit, parse, "--motd", path)
        self.assertEqual(
            str(error.code), f"twistd chat: --motd: {path} is over {MAX_BYTES} bytes"
        )

    def test_helpMentionsThem(self) -> None:
        text = str(tap.Options())
        for option in ("--metrics", "--log-format", "--shutdown-grace", "--motd"):
            self.assertIn(option, text)
