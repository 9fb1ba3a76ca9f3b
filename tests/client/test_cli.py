"""
The command line of C{chat-client} (L{chatservice.client.cli.Options}), and
L{chatservice.client.cli.main} reporting its errors.
"""

from __future__ import annotations

import io
import sys

from twisted.internet import endpoints
from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial import unittest

import chatservice
from chatservice.client import cli as client
from chatservice.client.tls import INSECURE_WARNING, SSL_WARNING
from tests.client.helpers import CertificateFiles, parse
from tests.support.helpers import make_temp_dir


class OptionsTests(unittest.SynchronousTestCase):
    def test_defaults(self) -> None:
        self.assertEqual(parse().endpoint, "tcp:host=127.0.0.1:port=12345")

    def test_host(self) -> None:
        self.assertEqual(
            parse("chat.example.org").endpoint, "tcp:host=chat.example.org:port=12345"
        )

    def test_host_and_port(self) -> None:
        self.assertEqual(
            parse("chat.example.org", "6000").endpoint,
            "tcp:host=chat.example.org:port=6000",
        )

    def test_ipv6_host_is_quoted(self) -> None:
        options = parse("::1", "7000")
        self.assertEqual(options.endpoint, r"tcp:host=\:\:1:port=7000")
        endpoint = endpoints.clientFromString(MemoryReactor(), options.endpoint)
        self.assertEqual((endpoint._host, endpoint._port), ("::1", 7000))

    def test_connect(self) -> None:
        for flag in ("--connect", "-c"):
            self.assertEqual(
                parse(flag, "unix:path=/tmp/chat.sock").endpoint,
                "unix:path=/tmp/chat.sock",
            )
        self.assertEqual(
            parse("--connect=tcp:host=127.0.0.1:port=1").endpoint,
            "tcp:host=127.0.0.1:port=1",
        )

    def test_connect_and_host(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            parse("--connect", "tcp:host=127.0.0.1:port=1", "127.0.0.1")
        self.assertEqual(str(caught.exception), "give either HOST [PORT] or --connect")

    def test_port_not_a_number(self) -> None:
        for port in ("http", "12a", ""):
            with self.assertRaises(usage.UsageError) as caught:
                parse("127.0.0.1", port)
            self.assertEqual(
                str(caught.exception), f"PORT must be a number, not {port!r}"
            )

    def test_too_many_arguments(self) -> None:
        self.assertRaises(usage.UsageError, parse, "127.0.0.1", "1", "2")

    def test_main_reports_usage_errors(self) -> None:
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        with self.assertRaises(SystemExit) as caught:
            client.main(["127.0.0.1", "port"])
        self.assertEqual(caught.exception.code, 2)
        self.assertTrue(
            stderr.getvalue().startswith(
                "chat-client: PORT must be a number, not 'port'\n"
            ),
            stderr.getvalue(),
        )
        # Followed by the usage text.
        self.assertIn("--connect ENDPOINT", stderr.getvalue())
        self.assertIn("--connect=", stderr.getvalue())


class TLSOptionsTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.files = CertificateFiles(self)

    def test_tls(self) -> None:
        options = parse("--tls", "chat.example.org", "6697")
        self.assertEqual(options.endpoint, "tls:host=chat.example.org:port=6697")
        self.assertEqual(options.tls_server, "chat.example.org:6697")
        self.assertEqual(options.warnings(), [])

    def test_tls_defaults(self) -> None:
        self.assertEqual(parse("--tls").endpoint, "tls:host=127.0.0.1:port=12345")

    def test_tls_ipv6(self) -> None:
        options = parse("--tls", "::1", "6697")
        self.assertEqual(options.endpoint, r"tls:host=\:\:1:port=6697")
        self.assertEqual(options.tls_server, "[::1]:6697")

    def test_plain_has_no_tls_server(self) -> None:
        self.assertIsNone(parse("127.0.0.1", "1").tls_server)

    def test_tls_with_connect(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            parse("--tls", "--connect", "tcp:host=127.0.0.1:port=1")
        self.assertIn("give a tls: endpoint", str(caught.exception))

    def test_ca_file_and_insecure_need_tls(self) -> None:
        for flags in (["--ca-file", str(self.files.cert)], ["--insecure"]):
            for target in (["127.0.0.1", "1"], ["--connect", "tcp:host=h:port=1"]):
                with self.assertRaises(usage.UsageError) as caught:
                    parse(*flags, *target)
                self.assertEqual(
                    str(caught.exception),
                    f"{flags[0]} is for TLS: add --tls, or --connect a tls: endpoint",
                )

    def test_ca_file_with_tls_endpoint(self) -> None:
        for argv in (
            ["--tls", "127.0.0.1", "6697"],
            ["--connect", "tls:host=127.0.0.1:port=6697"],
            ["--connect", "TLS:127.0.0.1:6697"],
        ):
            options = parse("--ca-file", str(self.files.cert), *argv)
            self.assertIsNotNone(options.trust_root)
            self.assertEqual(options.warnings(), [])

    def test_ca_file_and_insecure(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            parse("--tls", "--insecure", "--ca-file", str(self.files.cert))
        self.assertEqual(
            str(caught.exception), "give either --ca-file or --insecure, not both"
        )

    def test_ca_file_unreadable(self) -> None:
        missing = self.files.directory / "missing.pem"
        with self.assertRaises(usage.UsageError) as caught:
            parse("--tls", "--ca-file", str(missing))
        self.assertEqual(
            str(caught.exception),
            f"--ca-file: cannot read {missing}: No such file or directory",
        )

    def test_ca_file_without_certificate(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            parse("--tls", "--ca-file", str(self.files.key))
        self.assertEqual(
            str(caught.exception),
            f"--ca-file: {self.files.key} holds no PEM certificate",
        )

    def test_ca_file_with_broken_certificate(self) -> None:
        broken = self.files.directory / "broken.pem"
        broken.write_bytes(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        with self.assertRaises(usage.UsageError) as caught:
            parse("--tls", "--ca-file", str(broken))
        self.assertIn("cannot be read", str(caught.exception))

    def test_ca_file_and_trust_roots(self) -> None:
        roots = make_temp_dir(self)
        (roots / "ca.pem").write_bytes(self.files.cert.read_bytes())
        with self.assertRaises(usage.UsageError) as caught:
            parse(
                "--ca-file",
                str(self.files.cert),
                "--connect",
                f"tls:host=h:port=1:trustRoots={roots}",
            )
        self.assertIn(
            "trustRoots= cannot be used with --ca-file", str(caught.exception)
        )

    def test_insecure_warns(self) -> None:
        options = parse("--tls", "--insecure", "localhost", "6697")
        self.assertEqual(options.warnings(), [INSECURE_WARNING])
        self.assertIn("not checked", INSECURE_WARNING)

    def test_ssl_endpoint_warns(self) -> None:
        options = parse("--connect", "ssl:host=127.0.0.1:port=6697")
        self.assertEqual(options.warnings(), [SSL_WARNING])
        options = parse("--connect", "ssl:host=127.0.0.1:port=6697:caCertsDir=/")
        self.assertEqual(options.warnings(), [])

    def test_reconnect_flag(self) -> None:
        self.assertFalse(parse().get("reconnect"))
        self.assertTrue(parse("--reconnect").get("reconnect"))

    def test_main_reports_tls_usage_errors(self) -> None:
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        with self.assertRaises(SystemExit) as caught:
            client.main(["--insecure", "127.0.0.1", "1"])
        self.assertEqual(caught.exception.code, 2)
        self.assertTrue(
            stderr.getvalue().startswith(
                "chat-client: --insecure is for TLS: add --tls, or --connect a "
                "tls: endpoint\n"
            ),
            stderr.getvalue(),
        )
        for option in ("--tls", "--ca-file=", "--insecure", "--reconnect"):
            self.assertIn(option, stderr.getvalue())


class VersionTests(unittest.SynchronousTestCase):
    def test_version(self) -> None:
        """
        C{--version} names chatservice's version, not Twisted's, and exits
        0 before anything else is looked at.
        """
        stdout = io.StringIO()
        self.patch(sys, "stdout", stdout)
        for argv in (["--version"], ["--version", "not", "a", "port"]):
            with self.assertRaises(SystemExit) as caught:
                client.main(argv)
            self.assertEqual(caught.exception.code, 0)
        self.assertEqual(
            stdout.getvalue(),
            f"chat-client (chatservice) {chatservice.__version__}\n" * 2,
        )

    def test_in_help(self) -> None:
        self.assertIn("--version", str(client.Options()))
