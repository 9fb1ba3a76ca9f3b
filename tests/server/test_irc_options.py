"""
Tests for the IRC front end's options (C{--irc-port}, C{--irc-server-name})
and the listeners L{chatservice.server.tap.makeService} makes for them.
"""

from __future__ import annotations

import socket

from twisted.python import usage
from twisted.trial import unittest

from chatservice.frontends.irc.protocol import IRCFactory
from chatservice.frontends.line.protocol import LineFactory
from chatservice.server import tap
from chatservice.server.service import ChatService
from tests.server.test_options import parse
from tests.support.certs import make_certificate
from tests.support.helpers import make_temp_dir


class IRCOptionsTests(unittest.SynchronousTestCase):
    def test_offByDefault(self) -> None:
        """
        Without C{--irc-port} there is no IRC listener; the server name
        defaults to the host's name.
        """
        options = parse()
        self.assertEqual(options["irc-port"], [])
        self.assertEqual(options["irc-server-name"], socket.gethostname())
        service = tap.makeService(parse("--database", ":memory:"))
        assert isinstance(service, ChatService)
        self.assertEqual(
            [each.what for each in service.listeners() if each.what == "IRC"], []
        )

    def test_repeatableEndpoints(self) -> None:
        """
        C{--irc-port} takes any endpoint string (TLS and IPv6 too), and may
        be given several times.
        """
        key, cert = make_certificate(make_temp_dir(self))
        given = [
            "tcp:6667:interface=127.0.0.1",
            r"tcp6:6667:interface=\:\:1",
            f"ssl:6697:privateKey={key}:certKey={cert}",
        ]
        options = parse(*[word for each in given for word in ("--irc-port", each)])
        self.assertEqual(options["irc-port"], given)

    def test_badEndpoint(self) -> None:
        error = self.assertRaises(usage.UsageError, parse, "--irc-port", "tcp:70000")
        self.assertIn("--irc-port tcp:70000", str(error))

    def test_serverName(self) -> None:
        self.assertEqual(
            parse("--irc-server-name", "irc.example.org")["irc-server-name"],
            "irc.example.org",
        )
        error = self.assertRaises(
            usage.UsageError, parse, "--irc-server-name", "no spaces allowed"
        )
        self.assertIn("--irc-server-name", str(error))


class IRCServiceTests(unittest.SynchronousTestCase):
    def test_listeners(self) -> None:
        """
        Each C{--irc-port} gets a listener for one IRC factory, named as
        C{--irc-server-name} says, on the line front end's chat and
        admission.
        """
        service = tap.makeService(
            parse(
                "--database",
                ":memory:",
                "--irc-port",
                "tcp:0:interface=127.0.0.1",
                "--irc-port",
                "tcp:0:interface=127.0.0.1",
                "--irc-server-name",
                "irc.example.org",
            )
        )
        assert isinstance(service, ChatService)
        irc = [each.factory for each in service.listeners() if each.what == "IRC"]
        self.assertEqual(len(irc), 2)
        self.assertIs(irc[0], irc[1])
        factory = irc[0]
        assert isinstance(factory, IRCFactory)
        self.assertEqual(factory.server, "irc.example.org")
        (line,) = [each.factory for each in service.listeners() if each.what == "Chat"]
        assert isinstance(line, LineFactory)
        self.assertIs(factory.chat, line.chat)
        self.assertIs(factory.admission, line.admission)
