"""
Tests for L{chatservice.server.ports}: what an endpoint string asks the
reactor for, read without listening.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.internet.ssl import CertificateOptions
from twisted.trial import unittest

from chatservice.server.ports import TCPPort, port_problem, tcp_port
from tests.support.certs import make_certificate


class TCPPortTests(unittest.SynchronousTestCase):
    def test_tcp(self) -> None:
        self.assertEqual(
            tcp_port("tcp:12345:interface=127.0.0.1:backlog=9"),
            TCPPort(12345, 9, "127.0.0.1"),
        )

    def test_defaults(self) -> None:
        """
        What the string leaves out is Twisted's default.
        """
        self.assertEqual(tcp_port("tcp:0"), TCPPort(0, 50, ""))
        self.assertEqual(tcp_port("tcp6:7"), TCPPort(7, 50, "::"))

    def test_tcp6(self) -> None:
        self.assertEqual(
            tcp_port("tcp6:6697:interface=\\:\\:1"), TCPPort(6697, 50, "::1")
        )

    def test_ssl(self) -> None:
        """
        An C{ssl:} string gives its port and the certificate options made
        from its files.
        """
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory, True)
        key, cert = make_certificate(directory)
        port = tcp_port(f"ssl:6697:interface=127.0.0.1:privateKey={key}:certKey={cert}")
        assert port is not None
        self.assertEqual(
            (port.number, port.backlog, port.interface), (6697, 50, "127.0.0.1")
        )
        self.assertIsInstance(port.tls, CertificateOptions)

    def test_notTCP(self) -> None:
        self.assertIsNone(tcp_port("unix:/tmp/chat-test.sock"))

    def test_badString(self) -> None:
        self.assertRaises(ValueError, tcp_port, "tcp:notaport")
        self.assertRaises(ValueError, tcp_port, "bogus:1")


class PortProblemTests(unittest.SynchronousTestCase):
    def test_inRange(self) -> None:
        for description in ["tcp:0", "tcp:65535", "tcp6:1", "unix:/tmp/x.sock"]:
            self.assertIsNone(port_problem(description), description)

    def test_outOfRange(self) -> None:
        self.assertEqual(
            port_problem("tcp:99999"), "port 99999 is not between 0 and 65535"
        )
        self.assertEqual(port_problem("tcp6:-1"), "port -1 is not between 0 and 65535")
