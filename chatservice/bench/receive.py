"""
Reading what the server delivers: the generator's hot path.

Every read goes into one shared buffer. While calibrating, every line is
parsed to learn how the server frames each sender's lines. While counting,
a read costs a C{count(b"\\n")} and the parse of its last complete line
only (its latency, its order among that sender's lines, and whether it is
exactly what that sender sent, framed as calibrated); with C{--checksum},
also a count of the C{|} markers and a byte sum over everything read.
With C{--protocol irc}, a connection first registers and joins (every line
parsed, see L{chatservice.bench.irc}), and a read while counting also
costs a one-byte search for a server's C{PING} (see L{irc.probe}), which
is answered and not counted. With C{--protocol ws}, a connection first
upgrades and joins, every frame parsed until counting starts (see
L{chatservice.bench.ws}); while counting, a delivery ends at L{ws.MARK}
instead of a newline, and costs the same one search.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from chatservice.bench import irc, payload, ws
from chatservice.bench.connection import (
    CALIBRATING,
    COUNTING,
    DISCARDING,
    REGISTERING,
    Client,
)
from chatservice.bench.errors import BenchError
from chatservice.bench.latency import (
    ANCILLARY_SIZE,
    BUCKETS,
    TS_MASK,
    bucket,
    kernel_rx_us,
    now_us,
)
from chatservice.bench.messages import WorkerSpec
from chatservice.bench.shared import Window

RECV_BUFFER = 1 << 20


class Reader:
    """
    What a worker reads, and the latencies and checks it takes from it.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        window: Window,
        close: Callable[[Client], None],
        say: Callable[[Client, bytes], None],
    ) -> None:
        self.window = window
        self.close = close
        self.say = say
        self.irc = spec.irc
        self.irc_send = spec.irc_send
        # With --protocol irc: connections in the room, and PINGs answered.
        self.joined = 0
        self.pings = 0
        # What a read while counting looks for first (see counting).
        self.ping_probe = irc.PING
        self.ws = spec.ws
        # What ends a delivery, and its length less one.
        self.mark = ws.MARK if spec.ws else b"\n"
        self.back = len(self.mark) - 1
        # With --protocol ws: the key this worker's join requests are
        # masked with.
        self.key = os.urandom(4)
        self.senders = spec.senders
        self.checksum = spec.checksum
        self.kernel_time = spec.kernel_time
        self.fills = payload.fills_for(spec.size)
        self.plen = spec.size - 1
        self.buf = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buf)
        # The kernel's receive time of the last read, when it gives one.
        self.rx_us: int | None = None
        self.histogram = [0] * BUCKETS
        # With several nodes: every sender's node, and the histogram of the
        # sampled lines heard on a node other than their sender's.
        self.sender_nodes = spec.sender_nodes
        self.cross_histogram = [0] * BUCKETS if spec.sender_nodes else []
        self.max_latency_us = 0
        # Reads while counting.
        self.reads = 0
        # With --idle: connections heard from, bytes, and the last read.
        self.heard = 0
        self.rx_bytes = 0
        self.last_rx = 0

    def counting(self, clients: list[Client]) -> None:
        """
        Counting starts, C{clients}' framings learnt: with C{--protocol
        irc}, look for a C{PING} by a byte of it that no delivered line
        holds.
        """
        if self.irc:
            framings = [
                part
                for client in clients
                for parts in (client.prefix, client.eol)
                for part in parts
                if part is not None
            ]
            self.ping_probe = irc.probe(framings)

    def read(self, client: Client) -> None:
        """Read what C{client}'s socket has, and count or learn from it."""
        buf = self.buf
        tail = client.tail
        t = len(tail)
        if t:
            buf[:t] = tail
        try:
            if self.kernel_time:
                n, ancillary, _, _ = client.sock.recvmsg_into(
                    [self.view[t:]], ANCILLARY_SIZE
                )
                self.rx_us = kernel_rx_us(ancillary)
            else:
                n = client.sock.recv_into(self.view[t:])
        except BlockingIOError:
            return
        except OSError:
            n = 0
        if n == 0:
            self.close(client)
            return
        end = t + n
        mode = client.mode
        if mode == COUNTING:
            self.reads += 1
            client.bytes += n
            before = client.lines
            mark = self.mark
            back = self.back
            # A mark may have begun in the tail's last bytes.
            client.lines = before + buf.count(mark, max(0, t - back), end)
            ping = -1
            if self.irc and buf.find(self.ping_probe, 0, end) >= 0:
                ping = self.answer_pings(client, t, end)
            window = self.window
            if before == window.low and client.sid < 0 and client.lines > before:
                window.passed()
            if self.checksum:
                client.marks += buf.count(b"|", t, end)
                client.sum += payload.byte_sum(self.view[t:end])
            p = buf.rfind(mark, 0, end)
            if p < 0:
                client.tail = bytes(buf[:end])
                return
            # The last byte of the last delivery.
            p += back
            if p != ping:
                q = buf.rfind(mark, 0, p - back)
                self.sample(client, bytes(buf[q + 1 + back if q >= 0 else 0 : p + 1]))
            client.tail = bytes(buf[p + 1 : end])
        elif mode == DISCARDING:
            if not client.bytes:
                self.heard += 1
            client.bytes += n
            self.rx_bytes += n
            self.last_rx = time.monotonic_ns()
        elif self.ws:
            self.frames(client, bytes(buf[:end]))
        else:
            p = buf.rfind(b"\n", 0, end)
            if p < 0:
                client.tail = bytes(buf[:end])
                return
            client.tail = bytes(buf[p + 1 : end])
            if mode == REGISTERING:
                self.register(client, bytes(buf[: p + 1]))
            elif buf.find(b"|", 0, p) >= 0 or (
                self.irc and buf.find(irc.PING, 0, p) >= 0
            ):
                for line in bytes(buf[:p]).split(b"\n"):
                    if self.irc and line.startswith(irc.PING):
                        self.say(client, irc.pong(irc.command(line)[1]))
                    else:
                        self.calibrate(client, line + b"\n")

    def answer_pings(self, client: Client, start: int, end: int) -> int:
        """
        While counting: answer the server's C{PING}s that this read (from
        C{start} to C{end} of the buffer) completed, and take them out of
        C{client}'s counts; return where the last one's newline is (-1 if
        there was none).
        """
        found, size, lines, last = irc.take_pings(self.buf, start, end)
        client.lines -= found
        client.bytes -= size
        for line in lines:
            self.pings += 1
            if self.checksum:
                client.sum -= payload.byte_sum(line)
            self.say(client, irc.pong(irc.command(line)[1]))
        return last

    def register(self, client: Client, data: bytes) -> None:
        """
        With C{--protocol irc}, before calibration: answer C{PING}s, join
        the channel on C{001}, and be in the room on C{366}; give up on a
        reply that says the connection cannot get in.
        """
        for line in data.split(b"\n")[:-1]:
            name, rest = irc.command(line)
            if name == b"PING":
                self.say(client, irc.pong(rest))
            elif name == b"001":
                extra = self.irc_send if client.sid >= 0 else ()
                self.say(client, irc.after_welcome(client.nick, extra))
            elif name == b"366":
                client.mode = CALIBRATING
                self.joined += 1
                return
            elif name in irc.FATAL or name == b"ERROR":
                raise BenchError(
                    f"{client.nick.decode()} could not get into "
                    f"{irc.CHANNEL.decode()}: {line.decode('utf-8', 'replace')}"
                )

    def frames(self, client: Client, data: bytes) -> None:
        """
        With C{--protocol ws}, before counting: complete the upgrade and
        send the join request, be in the room on its C{ok}, then learn from
        the calibration lines; keep an incomplete frame for the next read.
        """
        at = 0
        if client.accept:
            at = ws.upgraded(data, client.accept)
            if at < 0:
                client.tail = data
                return
            client.accept = b""
            self.say(client, ws.join(self.key))
        found, used = ws.frames(data[at:])
        client.tail = data[at + used :]
        for opcode, message in found:
            if opcode != ws.TEXT:
                continue
            if client.mode == REGISTERING:
                if ws.is_joined(message):
                    client.mode = CALIBRATING
                    self.joined += 1
                    continue
                code = ws.refusal(message)
                if code is not None:
                    raise BenchError(
                        f"{client.nick.decode()} could not get into {ws.ROOM}: {code}"
                    )
            elif client.mode == CALIBRATING:
                p = message.find(ws.MARK)
                if p >= 0:
                    self.calibrate(client, message[: p + len(ws.MARK)])

    def calibrate(self, client: Client, line: bytes) -> None:
        """
        If C{line} is another sender's calibration line, learn from it what
        the server puts before and after that sender's payloads, and which
        round C{client} has heard from it.
        """
        found = payload.read(line, self.plen, self.fills)
        if found is None:
            return
        k, j, sid, seq, ts = found
        if seq or sid >= self.senders or sid == client.sid:
            return
        client.prefix[sid] = line[:k]
        client.eol[sid] = line[j + 1 :]
        if ts > client.cal_rounds[sid]:
            client.cal_rounds[sid] = ts
            client.cal_round = min(client.cal_rounds)

    def sample(self, client: Client, line: bytes) -> None:
        """Check one delivered line whole; time it; check its order."""
        found = payload.read(line, self.plen, self.fills)
        if found is None:
            client.bad_samples += 1
            return
        k, j, sid, seq, ts = found
        # A WebSocket delivery's framing is learnt from its JSON object's
        # start: what comes before (the frame's header, the previous
        # frame's time) varies.
        head = line[line.rfind(b"{", 0, k) : k] if self.ws else line[:k]
        if (
            sid >= self.senders
            or sid == client.sid
            or head != client.prefix[sid]
            or line[j + 1 :] != client.eol[sid]
        ):
            client.bad_samples += 1
            return
        received = self.rx_us if self.rx_us is not None else now_us()
        latency = (received - ts) & TS_MASK
        b = bucket(latency)
        self.histogram[b] += 1
        if self.sender_nodes and self.sender_nodes[sid] != client.node:
            self.cross_histogram[b] += 1
        if latency > self.max_latency_us:
            self.max_latency_us = latency
        if seq <= client.last_seq[sid]:
            client.reordered += seq < client.last_seq[sid]
        else:
            client.last_seq[sid] = seq
