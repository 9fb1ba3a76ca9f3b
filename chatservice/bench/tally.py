"""
The counts at the end of a run: what each connection should have received,
and what was lost, repeated or corrupt.

Per connection:

  - lost = expected lines - lines received (if positive), duplicates the
    opposite;
  - corrupt (at least) = sampled lines that are not exactly what that
    sender sent, plus one if the byte count does not fit the lines
    received (with C{--protocol ws}, at any of a delivery's sizes), plus
    (with C{--checksum}) lines without exactly one C{|} and one if the
    byte sum differs from what the lines sent add up to.
"""

from __future__ import annotations

from chatservice.bench.connection import Client
from chatservice.bench.messages import WorkerResult
from chatservice.bench.payload import ADLER_MOD, byte_sum
from chatservice.bench.ws import delivery_sizes, frame_end


def expect(
    clients: list[Client],
    finals: dict[int, tuple[int, int]],
    length: int,
    ws: bool = False,
) -> None:
    """
    Work out what each of C{clients} should receive, given the lines and
    byte sums every sender sent (C{finals}), payloads of C{length} bytes
    and the framing each learnt in calibration. With C{ws}, a delivery's
    size is a range (see L{chatservice.bench.ws.delivery_sizes}), and so
    is the bytes expected.
    """
    for client in clients:
        lines = size = size_max = total = 0
        lengths = []
        for sid, (sent, sent_sum) in finals.items():
            if sid == client.sid:
                continue
            prefix = client.prefix[sid] or b""
            eol = client.eol[sid] or b"\n"
            if ws:
                shortest, longest = delivery_sizes(len(prefix), length)
            else:
                shortest = longest = len(prefix) + length + len(eol)
            lengths += [shortest, longest]
            lines += sent
            size += sent * shortest
            size_max += sent * longest
            extra = byte_sum(prefix + eol) - byte_sum(b"\n")
            total += sent_sum + sent * extra
        client.expected = lines
        client.expected_bytes = size
        client.expected_bytes_max = size_max
        client.expected_sum = total % ADLER_MOD
        client.min_len = min(lengths, default=0)
        client.max_len = max(lengths, default=0)


def tally(
    clients: list[Client], result: WorkerResult, checksum: bool, ws: bool = False
) -> None:
    """
    Add what C{clients} got, against what they expected, to C{result}. With
    C{ws}, what follows the last payload's end is the rest of its frame.
    """
    for client in clients:
        got = client.lines
        result.lines += got
        result.expected += client.expected
        missing = client.expected - got
        result.lost += max(0, missing)
        result.duplicates += max(0, -missing)
        result.reordered += client.reordered
        result.disconnected += client.closed
        if client.tail and not (ws and frame_end(client.tail)):
            result.incomplete += 1
        corrupt = client.bad_samples
        if checksum:
            corrupt += abs(client.marks - got)
        # The bytes that fit the lines received: what was expected, less
        # the lines missing (or plus the lines repeated) at any length.
        if missing >= 0:
            low = client.expected_bytes - missing * client.max_len
            high = client.expected_bytes_max - missing * client.min_len
        else:
            low = client.expected_bytes - missing * client.min_len
            high = client.expected_bytes_max - missing * client.max_len
        wrong = not low <= client.bytes <= high or (
            missing == 0 and checksum and client.sum % ADLER_MOD != client.expected_sum
        )
        result.corrupt += max(corrupt, int(wrong))
    for client in clients:
        for sid, prefix in enumerate(client.prefix):
            if prefix is not None:
                result.delivered_form = f"{prefix!r} + payload + {client.eol[sid]!r}"
                break
        if result.delivered_form:
            break
