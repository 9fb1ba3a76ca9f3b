"""
Tests for the web front end's options (C{--web}, C{--web-origin}) and the
listeners L{chatservice.server.tap.makeService} makes for them.
"""

from __future__ import annotations

from twisted.python import usage
from twisted.trial import unittest

from chatservice.core.chat import Chat
from chatservice.frontends.line.protocol import LineFactory
from chatservice.frontends.web.site import ChatSite, origin_of
from chatservice.server import tap
from chatservice.server.service import ChatService
from tests.server.test_options import parse


class WebOptionsTests(unittest.SynchronousTestCase):
    def test_offByDefault(self) -> None:
        options = parse()
        self.assertEqual((options["web"], options["web-origin"]), ([], []))

    def test_repeatable(self) -> None:
        options = parse(
            "--web", "tcp:0:interface=127.0.0.1", "--web", "unix:/tmp/w.sock"
        )
        self.assertEqual(
            options["web"], ["tcp:0:interface=127.0.0.1", "unix:/tmp/w.sock"]
        )

    def test_badEndpoint(self) -> None:
        error = self.assertRaises(usage.UsageError, parse, "--web", "tcp:70000")
        self.assertIn("--web tcp:70000: port 70000", str(error))

    def test_origins(self) -> None:
        options = parse(
            "--web-origin", "https://Chat.Example.org/", "--web-origin", "http://a:8080"
        )
        self.assertEqual(
            options["web-origin"], ["https://chat.example.org", "http://a:8080"]
        )

    def test_badOrigin(self) -> None:
        for bad in (
            "chat.example.org",
            "ftp://x",
            "https://x/path",
            "https://u@x",
            "http://x:99999",
        ):
            error = self.assertRaises(usage.UsageError, parse, "--web-origin", bad)
            self.assertIn("--web-origin", str(error))
            self.assertIsNone(origin_of(bad))


class WebServiceTests(unittest.SynchronousTestCase):
    def test_listeners(self) -> None:
        """
        Each --web endpoint gets a listener for one site, whose sessions
        share the chat and the admission of the line front end.
        """
        service = tap.makeService(
            parse(
                "--database",
                ":memory:",
                "--web",
                "tcp:0:interface=127.0.0.1",
                "--web",
                "tcp:0:interface=127.0.0.1",
            )
        )
        assert isinstance(service, ChatService)
        web = [listener for listener in service.listeners() if listener.what == "Web"]
        self.assertEqual(len(web), 2)
        site = web[0].factory
        self.assertIs(site, web[1].factory)
        assert isinstance(site, ChatSite)
        (line,) = [each.factory for each in service.listeners() if each.what == "Chat"]
        assert isinstance(line, LineFactory)
        web_factory = site.resource.children[b"ws"].web  # type: ignore[attr-defined]
        self.assertIsInstance(web_factory.chat, Chat)
        self.assertIs(web_factory.chat, line.chat)
        self.assertIs(web_factory.admission, line.admission)
