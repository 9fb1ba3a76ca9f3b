"""
Tests for L{chatservice.server.options}: the C{twistd chat} options, how
each value is checked, and what an operator reads when one is wrong.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, cast

from twisted.python import usage
from twisted.trial import unittest

import chatservice
from chatservice.core.history import HISTORY_MAX
from chatservice.frontends.limits import Limits
from chatservice.server.options import (
    AMOUNT,
    COUNT,
    DEFAULT_PORT,
    DEFAULT_SHUTDOWN_GRACE,
    POSITIVE,
    REPLAY,
    Number,
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

    def test_operator(self) -> None:
        """
        --operator names operator accounts, several times; a name that is
        no nickname is refused, naming the option.
        """
        self.assertEqual(parse()["operator"], [])
        options = parse("--operator", "boss", "--operator", "Chef")
        self.assertEqual(options["operator"], ["boss", "Chef"])
        error = self.assertRaises(usage.UsageError, parse, "--operator", "a b")
        self.assertIn("--operator 'a b'", str(error))

    def test_passwordLengths(self) -> None:
        options = parse()
        self.assertEqual((options["password-min"], options["password-max"]), (8, 128))
        options = parse("--password-min", "1", "--password-max", "1024")
        self.assertEqual((options["password-min"], options["password-max"]), (1, 1024))
        self.assertRaises(usage.UsageError, parse, "--password-min", "0")
        error = self.assertRaises(
            usage.UsageError, parse, "--password-min", "20", "--password-max", "10"
        )
        self.assertIn("--password-max", str(error))

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


class NumberTests(unittest.SynchronousTestCase):
    """
    L{Number} reads every numeric option, and says why a value will not do.
    """

    def reason(self, kind: Number, value: str) -> str:
        return str(self.assertRaises(ValueError, kind.read, value))

    def test_whole(self) -> None:
        self.assertEqual(COUNT.read("0"), 0)
        self.assertIsInstance(COUNT.read("7"), int)
        self.assertEqual(self.reason(COUNT, "1.5"), "not a whole number")
        self.assertEqual(self.reason(COUNT, ""), "not a whole number")
        self.assertEqual(self.reason(COUNT, "-1"), "must be at least 0")

    def test_positive(self) -> None:
        self.assertEqual(POSITIVE.read("1"), 1)
        self.assertEqual(self.reason(POSITIVE, "0"), "must be at least 1")

    def test_amount(self) -> None:
        """
        Rates, days and seconds: not only whole numbers, never negative,
        never NaN or infinite.
        """
        self.assertEqual(AMOUNT.read("0.25"), 0.25)
        self.assertEqual(AMOUNT.read("0"), 0)
        self.assertEqual(self.reason(AMOUNT, "-1"), "must be at least 0")
        self.assertEqual(self.reason(AMOUNT, "-0.5"), "must be at least 0")
        self.assertEqual(self.reason(AMOUNT, "abc"), "not a number")
        self.assertEqual(self.reason(AMOUNT, "nan"), "not a number")
        self.assertEqual(self.reason(AMOUNT, "inf"), "must be finite")
        self.assertEqual(self.reason(AMOUNT, "-inf"), "must be at least 0")

    def test_replay(self) -> None:
        self.assertEqual(REPLAY.read(str(HISTORY_MAX)), HISTORY_MAX)
        self.assertEqual(
            self.reason(REPLAY, str(HISTORY_MAX + 1)), f"must be at most {HISTORY_MAX}"
        )


class OptionMessageTests(unittest.SynchronousTestCase):
    """
    Every bad value is refused with a message that names the option and
    the value as the operator typed them, and says why.
    """

    def message(self, *argv: str) -> str:
        return str(self.assertRaises(usage.UsageError, parse, *argv))

    def test_numbers(self) -> None:
        cases = {
            ("--flood-rate", "-1"): "--flood-rate -1: must be at least 0",
            ("--history-days", "-1"): "--history-days -1: must be at least 0",
            ("--shutdown-grace", "-1"): "--shutdown-grace -1: must be at least 0",
            ("--idle-timeout", "soon"): "--idle-timeout soon: not a number",
            ("--max-line", "abc"): "--max-line abc: not a whole number",
            ("--max-line", "0"): "--max-line 0: must be at least 1",
            ("--max-clients", "-3"): "--max-clients -3: must be at least 0",
            ("--history-replay", "100000"): (
                f"--history-replay 100000: must be at most {HISTORY_MAX}"
            ),
        }
        for argv, expected in cases.items():
            self.assertEqual(self.message(*argv), expected, argv)

    def test_valueQuotedAsTyped(self) -> None:
        """
        A value that a shell would need quoted is shown quoted, so that an
        empty one is visible.
        """
        self.assertEqual(self.message("--sendq", ""), "--sendq '': not a whole number")
        self.assertEqual(
            self.message("--flood-rate", "1 2"), "--flood-rate '1 2': not a number"
        )

    def test_portOutOfRange(self) -> None:
        for description in ["tcp:99999", "tcp6:65536:interface=\\:\\:1", "tcp:-1"]:
            message = self.message("--port", description)
            self.assertTrue(message.startswith("--port "), message)
            self.assertIn("is not between 0 and 65535", message)
        self.assertEqual(
            self.message("--metrics", "tcp:70000"),
            "--metrics tcp:70000: port 70000 is not between 0 and 65535",
        )

    def test_portInRange(self) -> None:
        options = parse("--port", "tcp:65535:interface=127.0.0.1", "--port", "tcp:0")
        self.assertEqual(options["port"], ["tcp:65535:interface=127.0.0.1", "tcp:0"])

    def test_unknownEndpointType(self) -> None:
        self.assertEqual(
            self.message("--port", "bogus:1"),
            "--port bogus:1: unknown endpoint type: 'bogus'",
        )

    def test_missingCertificate(self) -> None:
        path = os.path.join(tempfile.gettempdir(), "no-such-dir-chat", "key.pem")
        self.assertEqual(
            self.message("--port", f"ssl:0:privateKey={path}"),
            f"--port ssl:0:privateKey={path}: {path}: no such file or directory",
        )

    def test_logFormat(self) -> None:
        self.assertEqual(
            self.message("--log-format", "xml"),
            "--log-format xml: must be text or json",
        )

    def test_floodExempt(self) -> None:
        self.assertEqual(
            self.message("--flood-exempt", "nope"),
            "--flood-exempt nope: 'nope' does not appear to be an IPv4 or IPv6 network",
        )


class UnderTwistdTests(unittest.SynchronousTestCase):
    """
    Parsed by twistd (which sets the options' parent first), a problem
    stops twistd with one line on standard error: L{SystemExit} with the
    message, not a L{usage.UsageError}, which twistd prints after its whole
    usage text.
    """

    def parse(self, *argv: str) -> Options:
        options = Options()
        options.parent = cast(Any, {})
        options.parseOptions(["--database", ":memory:", *argv])
        return options

    def exit_message(self, *argv: str) -> str:
        error = self.assertRaises(SystemExit, self.parse, *argv)
        return str(error.code)

    def test_badValue(self) -> None:
        self.assertEqual(
            self.exit_message("--flood-rate", "-1"),
            "twistd chat: --flood-rate -1: must be at least 0",
        )

    def test_unknownOption(self) -> None:
        self.assertEqual(
            self.exit_message("--bogus"), "twistd chat: option --bogus not recognized"
        )

    def test_missingArgument(self) -> None:
        self.assertEqual(
            self.exit_message("--max-line"),
            "twistd chat: option --max-line requires argument",
        )

    def test_flagged(self) -> None:
        """
        The options remember that twistd parsed them, for C{makeService};
        options parsed otherwise do not say so.
        """
        self.assertTrue(self.parse().under_twistd)
        self.assertFalse(parse().under_twistd)

    def test_elsewhereUsageError(self) -> None:
        self.assertRaises(usage.UsageError, parse, "--flood-rate", "-1")


class VersionTests(unittest.SynchronousTestCase):
    def test_version(self) -> None:
        """
        C{twistd chat --version} is chatservice's version, not Twisted's.
        """
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        error = self.assertRaises(SystemExit, parse, "--version")
        self.assertEqual(error.code, 0)
        self.assertEqual(
            out.getvalue(), f"twistd chat (chatservice) {chatservice.__version__}\n"
        )
