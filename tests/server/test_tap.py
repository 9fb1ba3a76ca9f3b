"""
Tests for L{chatservice.server.tap} and the C{twistd chat} plugin, including how
the plugin is packaged.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from twisted.application.service import IServiceMaker
from twisted.internet import endpoints
from twisted.plugin import getPlugins
from twisted.trial import unittest

from chatservice.frontends.limits import Limits
from chatservice.frontends.line.protocol import LineFactory
from chatservice.server import tap
from chatservice.server.service import ChatService, Listener
from chatservice.storage.database import Database
from tests.server.test_options import parse

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
