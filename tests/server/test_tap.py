"""
Tests for L{chatservice.server.tap} and the C{twistd chat} plugin: the
service it makes, how the plugin is packaged, and what an operator sees
when the installed C{twistd chat} cannot start.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any, cast

from twisted.application.service import IServiceMaker
from twisted.internet import endpoints
from twisted.internet.error import CannotListenError
from twisted.plugin import getPlugins
from twisted.trial import unittest

import chatservice
from chatservice.frontends.limits import Limits
from chatservice.frontends.line.protocol import LineFactory
from chatservice.server import tap
from chatservice.server.options import Options
from chatservice.server.service import ChatService, Listener
from chatservice.storage.database import Database
from tests.server.test_options import parse
from tests.support.helpers import make_temp_dir

DEFAULT_MAX_LINE = Limits().max_line

TWISTD = Path(sys.executable).parent / "twistd"


class MakeServiceTests(unittest.SynchronousTestCase):
    def listeners(self, service: object) -> tuple[list[Listener], LineFactory]:
        assert isinstance(service, ChatService)
        listeners = [child for child in service if child is not service.database]
        self.assertIsInstance(service.database, Database)
        for listener in listeners:
            self.assertIsInstance(listener, Listener)
            self.assertEqual(listener.what, "Chat")
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
            ["twisted/plugins/chat_plugin.py", "twisted/plugins/chat_reuseport.py"],
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


def taken_port(testcase: unittest.SynchronousTestCase) -> int:
    """
    A loopback port that something else is listening on until the end of
    C{testcase}.
    """
    holder = socket.socket()
    testcase.addCleanup(holder.close)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return int(holder.getsockname()[1])


class MakeServiceUnderTwistdTests(unittest.SynchronousTestCase):
    """
    Given options that twistd parsed, C{makeService} binds the listeners
    before it returns: twistd starts the service only after it has
    redirected standard error to its log and forked.
    """

    def test_portInUse(self) -> None:
        port = taken_port(self)
        options = Options()
        options.parent = cast(Any, {})
        description = f"tcp:{port}:interface=127.0.0.1"
        options.parseOptions(["--database", ":memory:", "--port", description])
        error = self.assertRaises(SystemExit, tap.makeService, options)
        self.assertEqual(
            error.code,
            f"twistd chat: --port {description}: cannot listen: address already in use",
        )

    def test_notBoundOtherwise(self) -> None:
        """
        Made from options parsed anywhere else, the service listens when it
        starts, as services do.
        """
        port = taken_port(self)
        service = tap.makeService(parse("--port", f"tcp:{port}:interface=127.0.0.1"))
        self.assertRaises(CannotListenError, service.privilegedStartService)


class StartupErrorTests(unittest.SynchronousTestCase):
    """
    What an operator sees when the installed C{twistd chat} cannot start:
    one line on standard error naming the option or the listener and the
    reason, nothing on standard output, exit status 1, both in the
    foreground (C{-n}) and as a daemon.
    """

    def run_twistd(self, *args: str) -> dict[str, tuple[int, str, str]]:
        """
        C{twistd chat ARGS} in both modes at once; the exit status, standard
        output and standard error of each.
        """
        if not TWISTD.exists():
            raise unittest.SkipTest(f"{TWISTD} not found")
        directory = make_temp_dir(self)
        pidfile = directory / "twistd.pid"
        modes = {
            "foreground": ["-n"],
            "daemon": ["--pidfile", str(pidfile), "--logfile", "twistd.log"],
        }
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        processes = {
            mode: subprocess.Popen(
                [str(TWISTD), *flags, "chat", "--database", ":memory:", *args],
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for mode, flags in modes.items()
        }
        results = {}
        for mode, process in processes.items():
            try:
                out, err = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
            results[mode] = (process.returncode, out, err)
        if pidfile.exists():
            # A daemon started after all: stop it, and fail.
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
            self.fail(f"the daemon started: {results}")
        return results

    def assertRefused(self, expected: str, *args: str) -> None:
        for mode, (status, out, err) in self.run_twistd(*args).items():
            self.assertEqual((status, out, err.splitlines()), (1, "", [expected]), mode)

    def test_portInUse(self) -> None:
        """
        Not 45 lines and two chained tracebacks in the foreground, nor
        C{An error has occurred: b"...[Errno 98] Address a"} as a daemon.
        """
        description = f"tcp:{taken_port(self)}:interface=127.0.0.1"
        self.assertRefused(
            f"twistd chat: --port {description}: cannot listen: address already in use",
            "--port",
            description,
        )

    def test_metricsPortInUse(self) -> None:
        description = f"tcp:{taken_port(self)}:interface=127.0.0.1"
        self.assertRefused(
            f"twistd chat: --metrics {description}: cannot listen: "
            "address already in use",
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--metrics",
            description,
        )

    def test_portOutOfRange(self) -> None:
        """
        Not an C{OverflowError} from C{bind()}.
        """
        self.assertRefused(
            "twistd chat: --port tcp:99999: port 99999 is not between 0 and 65535",
            "--port",
            "tcp:99999",
        )

    def test_negativeFloodRate(self) -> None:
        """
        Not "is not a number of seconds": a rate is lines per second.
        """
        self.assertRefused(
            "twistd chat: --flood-rate -1: must be at least 0", "--flood-rate", "-1"
        )

    def test_negativeHistoryDays(self) -> None:
        self.assertRefused(
            "twistd chat: --history-days -1: must be at least 0",
            "--history-days",
            "-1",
        )

    def test_noUsageText(self) -> None:
        """
        A bad value is not preceded by 63 lines of usage under C{Usage:
        twistd [options]}, and names its option.
        """
        self.assertRefused(
            "twistd chat: --max-line abc: not a whole number", "--max-line", "abc"
        )

    def test_unknownOption(self) -> None:
        self.assertRefused("twistd chat: option --bogus not recognized", "--bogus")

    def test_version(self) -> None:
        """
        C{twistd chat --version} is chatservice's version.
        """
        expected = (0, f"twistd chat (chatservice) {chatservice.__version__}\n", "")
        for mode, result in self.run_twistd("--version").items():
            self.assertEqual(result, expected, mode)
