"""
Tests for L{chatservice.server.options}: the C{twistd chat} options, how
each value is checked, and what an operator reads when one is wrong.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from twisted.python import usage
from twisted.trial import unittest

from chatservice.frontends.limits import Limits
from chatservice.server.options import (
    DEFAULT_PORT,
    DEFAULT_SHUTDOWN_GRACE,
    Options,
    limits_from,
)

DEFAULT_MAX_LINE = Limits().max_line


def parse(*argv: str) -> Options:
    """
    Options as twistd would parse them; a database in memory unless one is
    given, so that no test leaves a file behind or finds one.
    """
    if not any(arg.startswith("--database") for arg in argv):
        argv = (*argv, "--database", ":memory:")
    options = Options()
    options.parseOptions(list(argv))
    return options


class OptionsTests(unittest.SynchronousTestCase):
    def test_defaults(self) -> None:
        options = parse()
        self.assertEqual(options["port"], [DEFAULT_PORT])
        self.assertEqual(options["max-line"], DEFAULT_MAX_LINE)

    def test_defaultPortIsLoopback(self) -> None:
        """
        Out of the box the server listens on loopback only.
        """
        self.assertIn("interface=127.0.0.1", DEFAULT_PORT)

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
        self.assertEqual(parse()["port"], [DEFAULT_PORT])

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
        limits = limits_from(options)
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
        text = str(Options())
        self.assertIn("--port", text)
        self.assertIn("--max-line", text)


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
        self.assertEqual(options["shutdown-grace"], DEFAULT_SHUTDOWN_GRACE)
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
        text = str(Options())
        for option in ("--metrics", "--log-format", "--shutdown-grace", "--motd"):
            self.assertIn(option, text)
