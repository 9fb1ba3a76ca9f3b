"""
Saying lines: as fast as the window of lines in flight allows, or at a
paced rate, in batches, without ever blocking the worker.

With C{--protocol ws} each line is a C{say} request in a masked text frame
(see L{chatservice.bench.ws}). A sender's frames are all the same size and
masked with the worker's one key, so a batch is built as plain frames and
masked with one XOR of big integers, in C: no Python step per byte.
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable

from chatservice.bench import irc, payload, ws
from chatservice.bench.connection import Client
from chatservice.bench.latency import now_us
from chatservice.bench.messages import WorkerSpec
from chatservice.bench.shared import Window

# Lines one sender says in one write, at most.
MAX_BATCH = 512


class Sender:
    """
    What a worker's senders say, and what they have not yet written.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        window: Window,
        epoll: select.epoll,
        close: Callable[[Client], None],
    ) -> None:
        self.spec = spec
        self.window = window
        self.epoll = epoll
        self.close = close
        self.fills = payload.fills_for(spec.size)
        # What goes around a payload, and what that adds to a line's byte
        # sum beyond the newline the checks count (see tally.expect).
        self.before, self.eol = (irc.PRIVMSG, irc.EOL) if spec.irc else (b"", b"\n")
        # With --protocol ws: what one frame is XORed with (zeros over its
        # header and key, the key over its payload).
        self.stream = b""
        if spec.ws:
            key = os.urandom(4)
            body = len(ws.SAY_HEAD) + spec.size - 1 + len(ws.SAY_TAIL)
            head = ws.header(body, True) + key
            self.before, self.eol = head + ws.SAY_HEAD, ws.SAY_TAIL
            self.stream = bytes(len(head)) + ws.key_stream(body, key)
        self.extra_sum = payload.byte_sum(self.before + self.eol) - payload.byte_sum(
            b"\n"
        )
        # The fewest lines counted, when the senders last looked, and
        # whether a sender then waited for the receivers to move on.
        self.fewest = 0
        self.blocked = False

    def calibrate(self, senders: list[Client], number: int) -> None:
        """Every sender says the calibration line of round C{number}."""
        for client in senders:
            line = payload.payload(client.sid, 0, number, self.fills)
            self.queue(client, self.masked(self.before + line + self.eol, 1))

    def send(self, senders: list[Client], now: int, t0: int) -> None:
        """
        Every sender says what the window allows, and the pace if there is
        one (C{now} and the start C{t0} on the monotonic clock, in ns).
        """
        spec = self.spec
        self.fewest = fewest = self.window.fewest()
        self.blocked = False
        share = fewest // spec.senders + spec.window
        for client in senders:
            if client.pending or client.closed:
                continue
            allowed = share - client.sent
            if spec.rate_per_sender is not None:
                due = int(spec.rate_per_sender * (now - t0) / 1e9) - client.sent
                allowed = min(allowed, due)
            if allowed <= 0:
                if share <= client.sent:
                    # Waiting for the receivers: be woken when they move.
                    self.window.block()
                    self.blocked = True
                continue
            first = client.sent + 1
            last = first + min(allowed, MAX_BATCH)
            data = payload.lines(
                client.sid, first, last, now_us(), self.fills, self.before, self.eol
            )
            client.sent = last - 1
            client.sent_sum += payload.byte_sum(data) - (last - first) * self.extra_sum
            self.window.sent(client.sid, client.sent)
            self.queue(client, self.masked(data, last - first))

    def masked(self, data: bytes, lines: int) -> bytes:
        """C{data}, C{lines} frames of plain text, masked (ws only)."""
        if not self.stream:
            return data
        return ws.mask(data, self.stream * lines)

    def waiting(self) -> bool:
        """Whether a sender waits for receivers that have since moved on."""
        return self.blocked and self.window.fewest() != self.fewest

    def queue(self, client: Client, data: bytes) -> None:
        if client.pending:
            client.pending += data
            return
        client.pending = data
        self.flush(client)

    def flush(self, client: Client) -> None:
        """Write what C{client} has pending, as much as its socket takes."""
        data = client.pending
        if not data or client.closed:
            client.pending = b""
            return
        try:
            n = client.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.close(client)
            return
        client.pending = data[n:]
        events = select.EPOLLIN | (select.EPOLLOUT if client.pending else 0)
        self.epoll.modify(client.fd, events)
