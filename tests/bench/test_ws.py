"""
Tests for C{chat-bench --protocol ws} (L{chatservice.bench.ws} and its use
in the reader, the sender and the tally): the frames in memory, checked
against wsproto (the library our server's WebSocket layer uses), and a
tiny run against our server's web front end.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time

from twisted.trial.unittest import SynchronousTestCase
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage

from chatservice.bench import payload, ws
from chatservice.bench.connection import CALIBRATING, COUNTING, REGISTERING, Client
from chatservice.bench.errors import BenchError
from chatservice.bench.launch import WEB_PORT_PATTERN, launched, ours_command
from chatservice.bench.messages import WorkerResult, WorkerSpec
from chatservice.bench.options import Options
from chatservice.bench.point import run_point
from chatservice.bench.receive import Reader
from chatservice.bench.send import Sender
from chatservice.bench.tally import expect, tally
from chatservice.frontends.web.frames import text_frame
from tests.bench.specs import worker_spec

FILLS = payload.fills_for(64)
PREFIX = b'{"type":"said","room":"bench","nick":"guest7","text":"'


def spec(**kwargs: object) -> WorkerSpec:
    return worker_spec(**{"port": 8080, "ws": True, **kwargs})


def said(sid: int, seq: int, when: str = "1733212345.123") -> bytes:
    """A said event's frame, as our server renders it, for sender C{sid}."""
    line = payload.payload(sid, seq, 1234, FILLS)
    return text_frame(PREFIX + line + b'","time":' + when.encode() + b"}")


def server_reads(data: bytes) -> list[str]:
    """The text messages a server (wsproto) reads from a client's C{data}."""
    server = Connection(ConnectionType.SERVER)
    server.receive_data(data)
    return [e.data for e in server.events() if isinstance(e, TextMessage)]


class _Window:
    """The part of L{chatservice.bench.shared.Window} a reader uses."""

    low = -1

    def passed(self) -> None:
        pass

    def sent(self, sid: int, n: int) -> None:
        pass

    def fewest(self) -> int:
        return 0

    def block(self) -> None:
        pass


class FrameTests(SynchronousTestCase):
    def test_handshake(self) -> None:
        """
        The upgrade request asks for /ws; the answer's accept key is
        checked (RFC 6455's own example key and accept), and where the
        frames start is found.
        """
        request, accept = ws.handshake("127.0.0.1", 8080)
        self.assertTrue(request.startswith(b"GET /ws HTTP/1.1\r\n"))
        self.assertIn(b"Host: 127.0.0.1:8080\r\n", request)
        self.assertIn(b"Sec-WebSocket-Version: 13\r\n", request)
        self.assertTrue(request.endswith(b"\r\n\r\n"))
        key = request.split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0]
        self.assertEqual(len(base64.b64decode(key)), 16)
        digest = hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
        self.assertEqual(accept, base64.b64encode(digest.digest()))
        answer = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        )
        known = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        self.assertEqual(ws.upgraded(answer[:-1], known), -1)
        self.assertEqual(ws.upgraded(answer + b"\x81\x00", known), len(answer))
        with self.assertRaises(BenchError):
            ws.upgraded(answer, b"wrong")
        with self.assertRaises(BenchError):
            ws.upgraded(b"HTTP/1.1 403 Forbidden\r\n\r\n", known)

    def test_client_frames(self) -> None:
        """A client frame is masked, and a server reads the request back."""
        key = b"\x01\x02\x03\x04"
        frame = ws.join(key)
        self.assertTrue(frame[1] & 0x80)
        self.assertNotIn(b"join", frame)
        (text,) = server_reads(frame)
        self.assertEqual(
            json.loads(text), {"type": "join", "room": "bench", "id": "bench"}
        )
        # Long enough for the two-byte length.
        long = ws.client_frame(b"x" * 300, key)
        self.assertEqual(long[1], 0x80 | 126)
        self.assertEqual(server_reads(long), ["x" * 300])

    def test_frames(self) -> None:
        """Whole frames are parsed; an incomplete one is left."""
        data = text_frame(b"a") + text_frame(b"b" * 200) + text_frame(b"c" * 70000)
        found, used = ws.frames(data)
        self.assertEqual(
            found, [(ws.TEXT, b"a"), (ws.TEXT, b"b" * 200), (ws.TEXT, b"c" * 70000)]
        )
        self.assertEqual(used, len(data))
        for cut in (1, 3, 5, 200):
            found, used = ws.frames(data[: len(text_frame(b"a")) + cut])
            self.assertEqual((found, used), ([(ws.TEXT, b"a")], 3))
        with self.assertRaises(BenchError):
            ws.frames(b"\x81\x81abcd!")

    def test_sizes(self) -> None:
        """
        A said frame's size varies with its time: the sizes allowed cover
        every time our server writes, and the rest of a frame after a
        payload's mark is told from the start of another.
        """
        low, high = ws.delivery_sizes(len(PREFIX), 63)
        sizes = {len(said(0, 1, when)) for when in ("1733212345.1", "1733212345.123")}
        self.assertEqual(sizes, {low, high})
        frame = said(0, 1, "1733212345.12")
        tail = frame[frame.find(ws.MARK) + len(ws.MARK) :]
        self.assertTrue(ws.frame_end(tail))
        self.assertFalse(ws.frame_end(tail + said(0, 2)[:-1]))
        self.assertFalse(ws.frame_end(tail[:-1]))


class SenderTests(SynchronousTestCase):
    def test_say_frames(self) -> None:
        """
        A batch of say requests is masked frames that a server reads back
        as the payloads, in order; so is a calibration line.
        """
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        ours.setblocking(False)
        sender = Sender(
            spec(sender_ids=(1,)),
            _Window(),  # type: ignore[arg-type]
            _FakeEpoll(),  # type: ignore[arg-type]
            lambda client: None,
        )
        client = Client(ours, 1, 2)
        sender.calibrate([client], 7)
        sender.send([client], 0, 0)
        theirs.settimeout(5)
        data = b""
        while len(server_reads(data)) < 11:
            chunk = theirs.recv(65536)
            self.assertTrue(chunk)
            data += chunk
        texts = [json.loads(t) for t in server_reads(data)]
        self.assertEqual(len(texts), 11)
        self.assertEqual({t["type"] for t in texts}, {"say"})
        self.assertEqual({t["room"] for t in texts}, {"bench"})
        got = [payload.read(t["text"].encode(), 63, FILLS) for t in texts]
        self.assertEqual(
            [(g[2], g[3]) for g in got if g is not None],
            [(1, seq) for seq in range(11)],
        )
        self.assertEqual(got[0][4] if got[0] else None, 7)


class _FakeEpoll:
    def modify(self, fd: int, events: int) -> None:
        pass


class ReaderTests(SynchronousTestCase):
    """The reader's WebSocket paths, over a socket pair."""

    def setUp(self) -> None:
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        self.theirs = theirs
        self.said: list[bytes] = []
        self.reader = Reader(
            spec(),
            _Window(),  # type: ignore[arg-type]
            lambda client: None,
            lambda client, data: self.said.append(data),
        )
        self.client = Client(ours, -1, 2)
        self.client.nick = b"c1"
        self.client.mode = REGISTERING

    def feed(self, data: bytes) -> None:
        self.theirs.sendall(data)
        self.reader.read(self.client)

    def test_upgrades_joins_calibrates(self) -> None:
        """
        The answer to the upgrade, then the join request; in the room on
        its ok; calibration lines learnt, whatever frames come between and
        however the reads cut them.
        """
        self.client.accept = b"k"
        hello = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: k\r\n\r\n"
        welcome = text_frame(b'{"type":"welcome","nick":"guest7","account":null}')
        self.feed(hello[:10])
        self.assertEqual(self.said, [])
        self.feed(hello[10:] + welcome[:5])
        self.assertEqual(len(self.said), 1)
        self.assertEqual(server_reads(self.said[0])[0][:15], '{"type":"join",')
        self.feed(welcome[5:] + text_frame(b'{"type":"ok","id":"bench"}'))
        self.assertEqual(self.client.mode, CALIBRATING)
        self.assertEqual(self.reader.joined, 1)
        line = said(1, 0)
        self.feed(text_frame(b'{"type":"joined","room":"bench"}') + line[:40])
        self.feed(line[40:])
        self.assertEqual(self.client.prefix[1], PREFIX)
        self.assertEqual(self.client.eol[1], ws.EOL)
        self.assertEqual(self.client.cal_rounds[1], 1234)
        self.assertEqual(self.client.tail, b"")

    def test_refused(self) -> None:
        """An error before the join's ok says why the room was refused."""
        self.client.accept = b""
        with self.assertRaises(BenchError) as caught:
            self.feed(text_frame(b'{"type":"error","code":"bad_room"}'))
        self.assertIn("bad_room", str(caught.exception))

    def count(self, data: bytes, cuts: list[int]) -> None:
        self.client.mode = COUNTING
        self.client.prefix[1] = PREFIX
        self.client.eol[1] = ws.EOL
        at = 0
        for cut in [*cuts, len(data)]:
            self.feed(data[at:cut])
            at = cut

    def test_counting(self) -> None:
        """
        While counting, every said frame is one line, also when its mark
        is cut between two reads, wherever, or a read ends just after one;
        the last is sampled and checked.
        """
        frames = [said(1, seq, f"1733212345.{seq}") for seq in range(1, 5)]
        data = b"".join(frames)
        mark = data.find(ws.MARK, len(frames[0]))
        for cut in range(1, 2 * len(ws.MARK)):
            self.setUp()
            self.count(data, [mark + cut, len(data) - 3])
            self.assertEqual(self.client.lines, 4, cut)
            self.assertEqual(self.client.bytes, len(data))
            self.assertEqual(self.client.bad_samples, 0)
            self.assertEqual(self.client.last_seq[1], 4)
            self.assertTrue(ws.frame_end(self.client.tail))

    def test_counting_corrupt(self) -> None:
        """A sampled frame of another room is a bad sample."""
        frame = said(1, 1).replace(b'"bench"', b'"bunch"')
        self.count(frame, [])
        self.assertEqual(self.client.lines, 1)
        self.assertEqual(self.client.bad_samples, 1)


class TallyTests(SynchronousTestCase):
    def check(self, data: bytes, sent: int) -> WorkerResult:
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        client = Client(ours, -1, 2)
        client.prefix[1] = PREFIX
        client.eol[1] = ws.EOL
        client.lines = data.count(ws.MARK)
        client.bytes = len(data)
        client.tail = data[data.rfind(ws.MARK) + len(ws.MARK) :]
        expect([client], {1: (sent, 0)}, 63, ws=True)
        result = WorkerResult()
        tally([client], result, checksum=False, ws=True)
        return result

    def test_clean(self) -> None:
        """Frames of every size a time gives are neither lost nor corrupt."""
        times = ["1733212345.1", "1733212345.12", "1733212345.123"]
        data = b"".join(said(1, n, times[n % 3]) for n in range(1, 10))
        result = self.check(data, 9)
        self.assertEqual(
            (result.lost, result.corrupt, result.incomplete), (0, 0, 0), result
        )

    def test_lost_cut_and_extra(self) -> None:
        """
        A frame missing is lost; one cut short is incomplete; a frame that
        is no said event makes the bytes not fit the lines: corrupt.
        """
        data = b"".join(said(1, n) for n in range(1, 10))
        result = self.check(data, 10)
        self.assertEqual((result.lost, result.corrupt), (1, 0))
        result = self.check(data[:-5], 9)
        self.assertEqual((result.lost, result.incomplete), (0, 1))
        extra = text_frame(b'{"type":"notice","text":"hello there, everyone"}')
        result = self.check(data[:200] + extra + data[200:], 9)
        self.assertEqual((result.lost, result.corrupt), (0, 1))


class OursTests(SynchronousTestCase):
    def test_ours_serves_the_web(self) -> None:
        command = ours_command("ws")
        self.assertEqual(command[-2:], ["--web", "tcp:0:interface=127.0.0.1"])
        log = (
            b"Chat server listening on IPv4Address(type='TCP', host='127.0.0.1', "
            b"port=4000)\nWeb server listening on IPv4Address(type='TCP', "
            b"host='127.0.0.1', port=4002)\n"
        )
        match = WEB_PORT_PATTERN.search(log)
        assert match is not None
        self.assertEqual(match.group(1), b"4002")

    def test_run(self) -> None:
        """
        A tiny run against our web front end: every line reaches every
        receiver as a said event, checked and timed.
        """
        options = Options(
            seconds=0.5, drain=5.0, processes=2, window=50, timeout=60.0, protocol="ws"
        )
        started = time.monotonic()
        with launched(ours_command("ws"), "ours", pattern=WEB_PORT_PATTERN) as server:
            result = run_point(server, receivers=5, senders=2, options=options)
        self.assertLess(time.monotonic() - started, 60)
        self.assertTrue(result.ok, result)
        self.assertEqual((result.lost, result.corrupt), (0, 0))
        self.assertGreater(result.lines_sent, 50)
        self.assertEqual(result.expected, 6 * result.lines_sent)
        self.assertGreater(result.latency_samples, 0)
        self.assertIn('{"type":"said","room":"bench"', result.delivered_form)
