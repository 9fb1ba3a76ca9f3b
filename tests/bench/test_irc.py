"""
Tests for C{chat-bench --protocol irc} (L{chatservice.bench.irc} and its
use in the reader and sender): the IRC lines in memory, and a tiny run
against a fake IRC server, so that nothing here needs ngircd.
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import textwrap
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from chatservice.bench import irc, payload
from chatservice.bench.connection import CALIBRATING, COUNTING, REGISTERING, Client
from chatservice.bench.errors import BenchError
from chatservice.bench.launch import IRC_PORT_PATTERN, launched, ours_command
from chatservice.bench.messages import WorkerSpec
from chatservice.bench.options import Options
from chatservice.bench.point import run_point
from chatservice.bench.receive import Reader
from tests.bench.specs import worker_spec

# An IRC-ish server in a few lines: registration gets 001, JOIN gets the
# JOIN to every member and 366, a PRIVMSG goes to every other member, and
# every member gets a PING every tenth of a second, also while counting.
FAKE_IRC_SERVER = textwrap.dedent(
    """
    import sys

    from twisted.internet import reactor, task
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import LineOnlyReceiver


    class Fake(LineOnlyReceiver):
        nick = b"*"

        def connectionLost(self, reason):
            self.factory.members.discard(self)

        def lineReceived(self, line):
            command, _, rest = line.partition(b" ")
            if command == b"NICK":
                self.nick = rest
            elif command == b"USER":
                self.sendLine(b":fake 001 %s :Welcome" % self.nick)
            elif command == b"JOIN":
                self.factory.members.add(self)
                for member in self.factory.members:
                    member.sendLine(b":%s!u@h JOIN %s" % (self.nick, rest))
                self.sendLine(b":fake 366 %s %s :End of /NAMES" % (self.nick, rest))
            elif command == b"PRIVMSG":
                out = b":%s!u@h.example %s" % (self.nick, line)
                for member in self.factory.members:
                    if member is not self:
                        member.sendLine(out)


    factory = Factory.forProtocol(Fake)
    factory.members = set()
    task.LoopingCall(
        lambda: [m.sendLine(b"PING :fake") for m in factory.members]
    ).start(0.1)
    port = reactor.listenTCP(int(sys.argv[1]), factory, interface="127.0.0.1")
    print("listening on", port.getHost().port, flush=True)
    reactor.run()
    """
)


def spec(**kwargs: object) -> WorkerSpec:
    return worker_spec(**{"irc": True, **kwargs})


class _Window:
    """The part of L{chatservice.bench.shared.Window} a reader uses."""

    low = -1

    def passed(self) -> None:
        pass


class LineTests(SynchronousTestCase):
    def test_registration(self) -> None:
        self.assertEqual(irc.nick(1, 1009), b"b1_1009")
        self.assertEqual(
            irc.registration(b"b0_1"), b"NICK b0_1\r\nUSER b0_1 0 * :chat-bench\r\n"
        )

    def test_after_welcome(self) -> None:
        """The --irc-send lines, {nick} filled in, and then the JOIN."""
        self.assertEqual(
            irc.after_welcome(b"b0_1", ("OPER bench bench", "MODE {nick} +F")),
            b"OPER bench bench\r\nMODE b0_1 +F\r\nJOIN #bench\r\n",
        )

    def test_command(self) -> None:
        self.assertEqual(irc.command(b":srv 001 b0_1 :Hi\r\n"), (b"001", b"b0_1 :Hi"))
        self.assertEqual(irc.command(b"PING :srv\r"), (b"PING", b":srv"))
        self.assertEqual(irc.pong(b":srv"), b"PONG :srv\r\n")

    def test_take_pings(self) -> None:
        """
        Only complete PING lines at the start of a line count, and only those
        whose newline the read brought (at C{start} or after).
        """
        buf = bytearray(
            b"NG :old\r\n:a PRIVMSG #bench :xPING y\r\nPING :s\r\nx\nPING :t"
        )
        found, size, lines, last = irc.take_pings(buf, 5, len(buf))
        self.assertEqual((found, lines), (1, [b"PING :s\r\n"]))
        self.assertEqual(size, 9)
        self.assertEqual(last, buf.index(b"PING :s") + 8)
        buf = bytearray(b"PING :s\r\n")
        self.assertEqual(irc.take_pings(buf, 9, 9)[0], 0)
        self.assertEqual(irc.take_pings(buf, 4, 9)[0], 1)

    def test_probe(self) -> None:
        """
        A read is searched for a byte of PING that no framing and no
        payload holds; PING itself if every byte of it is taken.
        """
        self.assertEqual(irc.probe([b":b0_1!u@h PRIVMSG #bench :", b"\r\n"]), b"N")
        self.assertEqual(irc.probe([b":b!u@PAGING.example PRIVMSG #b :"]), irc.PING)
        self.assertEqual(irc.probe([]), b"P")
        for byte in payload.ALPHABET:
            self.assertNotIn(byte, irc.PING)

    def test_lines_wrapped(self) -> None:
        """
        IRC lines are the line protocol's payloads between C{PRIVMSG #bench
        :} and CRLF; the line protocol's are unchanged.
        """
        fills = payload.fills_for(64)
        plain = payload.lines(3, 1, 4, 1234, fills)
        wrapped = payload.lines(3, 1, 4, 1234, fills, irc.PRIVMSG, irc.EOL)
        self.assertEqual(
            wrapped,
            b"".join(irc.PRIVMSG + line + irc.EOL for line in plain.split(b"\n")[:-1]),
        )
        self.assertEqual(plain.split(b"\n")[0], payload.payload(3, 1, 1234, fills))

    def test_ours_listens_for_irc(self) -> None:
        command = ours_command("irc")
        self.assertEqual(command[-2:], ["--irc-port", "tcp:0:interface=127.0.0.1"])
        self.assertNotIn("--irc-port", ours_command())
        log = (
            b"Chat server listening on IPv4Address(type='TCP', host='127.0.0.1', "
            b"port=4000)\nIRC server listening on IPv4Address(type='TCP', "
            b"host='127.0.0.1', port=4001)\n"
        )
        match = IRC_PORT_PATTERN.search(log)
        assert match is not None
        self.assertEqual(match.group(1), b"4001")


class ReaderTests(SynchronousTestCase):
    """The reader's IRC paths, over a socket pair."""

    def setUp(self) -> None:
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        self.theirs = theirs
        self.said: list[bytes] = []
        self.reader = Reader(
            spec(irc_send=("OPER a b",)),
            _Window(),  # type: ignore[arg-type]
            lambda client: None,
            lambda client, data: self.said.append(data),
        )
        self.client = Client(ours, 0, 2)
        self.client.nick = b"b0_1"
        self.client.mode = REGISTERING

    def feed(self, data: bytes) -> None:
        self.theirs.sendall(data)
        self.reader.read(self.client)

    def test_registers_and_joins(self) -> None:
        """
        A PING is answered; on 001 a sender says its --irc-send lines and
        joins; on 366 it is in the room; lines before are skipped.
        """
        self.feed(b"PING :x\r\n:s NOTICE * :hi\r\n:s 001 b0_1 :Welcome\r\n:s 0")
        self.assertEqual(self.said, [b"PONG :x\r\n", b"OPER a b\r\nJOIN #bench\r\n"])
        self.assertEqual(self.client.mode, REGISTERING)
        self.feed(
            b"05 b0_1 X=1 :ok\r\n:b0_1!u@h JOIN #bench\r\n:s 366 b0_1 #bench :E\r\n"
        )
        self.assertEqual(self.client.mode, CALIBRATING)
        self.assertEqual(self.reader.joined, 1)

    def test_refused(self) -> None:
        """A nickname refused is an error that names it."""
        with self.assertRaises(BenchError) as caught:
            self.feed(b":s 433 * b0_1 :Nickname already in use\r\n")
        self.assertIn("b0_1", str(caught.exception))

    def test_ping_while_counting(self) -> None:
        """
        A PING while counting is answered and counted as neither a line nor
        its bytes, also when it is the last line of a read.
        """
        fills = payload.fills_for(64)
        self.client.mode = COUNTING
        self.client.prefix[1] = b":b0_2!u@h PRIVMSG #bench :"
        self.client.eol[1] = b"\r\n"
        self.reader.counting([self.client])
        self.assertEqual(self.reader.ping_probe, b"N")
        lines = payload.lines(1, 1, 3, 1234, fills, self.client.prefix[1], irc.EOL)
        first, second = lines.split(b"\r\n")[:2]
        data = first + b"\r\nPING :s\r\n" + second + b"\r\n"
        self.feed(data[:-20])
        self.feed(data[-20:] + b"PING :t\r\n")
        self.assertEqual(self.said, [b"PONG :s\r\n", b"PONG :t\r\n"])
        self.assertEqual(self.client.lines, 2)
        self.assertEqual(self.client.bytes, len(lines))
        self.assertEqual(self.client.bad_samples, 0)


class FakeServerTests(SynchronousTestCase):
    def test_run(self) -> None:
        """
        A tiny run against the fake IRC server delivers every line, checked
        as the line protocol's are, while the server PINGs throughout.
        """
        directory = tempfile.mkdtemp(prefix="chat-bench-test-")
        self.addCleanup(shutil.rmtree, directory, True)
        script = Path(directory) / "fake_irc.py"
        script.write_text(FAKE_IRC_SERVER)
        command = [sys.executable, str(script), "{port}"]
        options = Options(
            seconds=0.5,
            drain=3.0,
            processes=1,
            window=50,
            timeout=60.0,
            checksum=True,
            protocol="irc",
        )
        with launched(command, "fake") as server:
            result = run_point(server, receivers=3, senders=2, options=options)
        self.assertTrue(result.ok, result)
        self.assertGreater(result.lines_sent, 100)
        self.assertEqual(result.received, result.expected)
        self.assertEqual(result.expected, 4 * result.lines_sent)
        self.assertGreater(result.latency_samples, 0)
        self.assertIn("PRIVMSG #bench :", result.delivered_form)


class OursPacedTests(SynchronousTestCase):
    def test_paced_irc(self) -> None:
        """
        Our server over IRC at a paced rate (the issue's paced point, made
        tiny): every line reaches every receiver as a PRIVMSG, checked and
        timed, and the senders keep to the pace.
        """
        options = Options(
            seconds=0.5,
            drain=3.0,
            processes=2,
            timeout=60.0,
            rate=1000.0,
            protocol="irc",
        )
        with launched(ours_command("irc"), "ours", pattern=IRC_PORT_PATTERN) as server:
            result = run_point(server, receivers=5, senders=1, options=options)
        self.assertTrue(result.ok, result)
        self.assertEqual((result.lost, result.corrupt), (0, 0))
        self.assertGreater(result.lines_sent, 0)
        # Paced: about 1,000 lines a second, never more.
        self.assertLessEqual(result.lines_sent, 500 + 1)
        self.assertEqual(result.expected, 5 * result.lines_sent)
        self.assertGreater(result.latency_samples, 0)
        self.assertIn("PRIVMSG #bench :", result.delivered_form)
