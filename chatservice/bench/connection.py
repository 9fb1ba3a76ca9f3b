"""
One connection of a worker, and what it has counted.
"""

from __future__ import annotations

import socket

# More lines, or calibration rounds, than any run counts.
NOBODY = 1 << 62

# What a connection does with what it reads: waits for its socket; learns
# the server's framing from the calibration lines; counts and samples; or,
# for --idle, only counts bytes; or, with --protocol irc or ws, registers
# (or upgrades) and joins the room first.
CONNECTING, CALIBRATING, COUNTING, DISCARDING, REGISTERING = range(5)


class Client:
    """One connection of a worker: a receiver, or a sender (which receives
    the other senders' lines too)."""

    __slots__ = (
        "accept",
        "bad_samples",
        "bytes",
        "cal_round",
        "cal_rounds",
        "closed",
        "eol",
        "expected",
        "expected_bytes",
        "expected_bytes_max",
        "expected_sum",
        "fd",
        "last_seq",
        "lines",
        "marks",
        "max_len",
        "min_len",
        "mode",
        "nick",
        "node",
        "pending",
        "prefix",
        "reordered",
        "sent",
        "sent_sum",
        "sid",
        "sock",
        "sum",
        "tail",
    )

    def __init__(
        self, sock: socket.socket, sid: int, senders: int, node: int = 0
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.sid = sid
        # Which node of several it is connected to (0 with one server).
        self.node = node
        self.mode = CONNECTING
        # With --protocol irc: its nickname.
        self.nick = b""
        # With --protocol ws: the handshake's accept key, until upgraded.
        self.accept = b""
        self.tail = b""
        self.closed = False
        self.lines = 0
        self.bytes = 0
        self.marks = 0
        self.sum = 0
        self.bad_samples = 0
        self.reordered = 0
        self.last_seq = [0] * senders
        self.prefix: list[bytes | None] = [None] * senders
        self.eol: list[bytes | None] = [None] * senders
        # Highest calibration round seen from each sender (-1: none; a
        # sender does not hear itself).
        self.cal_rounds = [-1] * senders
        if sid >= 0:
            self.cal_rounds[sid] = NOBODY
        self.cal_round = -1 if senders > (sid >= 0) else NOBODY
        self.expected = 0
        self.expected_bytes = 0
        # More than expected_bytes where a line's size varies (ws).
        self.expected_bytes_max = 0
        self.expected_sum = 0
        self.min_len = 0
        self.max_len = 0
        # Sender side
        self.pending = b""
        self.sent = 0
        self.sent_sum = 0
