#!/usr/bin/env python3
"""
What the cluster codec costs per line said: encoding and decoding 10,000
L{Said} events, alone and with the batch's JSON, in microseconds per event.
Also the same events written as the other events are (named fields), to
show why the lines people say are positional.

    python bench/codec-cost.py
    python bench/codec-cost.py --events 10000 --rounds 7

Best of --rounds rounds. It measures the installed package (pip install .
first), as the other benchmarks do.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, cast

from chatservice.cluster import codec
from chatservice.core import events


def best(rounds: int, n: int, run: Callable[[], object]) -> float:
    """The fastest of C{rounds} runs of C{run}, in microseconds per event."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    n, rounds = options.events, options.rounds
    said = [
        events.Said(f"#room{i % 50}", f"nick{i % 300}", f"line number {i} of the test")
        for i in range(n)
    ]
    encoded = [codec.encode_event(e) for e in said]
    data = codec.dumps(encoded)
    assert [codec.decode_event(v) for v in codec.loads(data)] == said

    # The named form every other event has, for comparison.
    named = codec._Record(events.Said, codec._hints(events.Said), named=True)
    as_named: list[Any] = [["Said", named.encode_object(e)] for e in said]
    named_data = codec.dumps(as_named)

    def encode() -> object:
        return [codec.encode_event(e) for e in said]

    def decode() -> object:
        return [codec.decode_event(v) for v in encoded]

    def encode_named() -> object:
        return [["Said", named.encode_object(e)] for e in said]

    def decode_named() -> object:
        return [named.decode_object(v[1]) for v in as_named]

    def batch() -> object:
        return [
            codec.decode_event(v)
            for v in codec.loads(codec.dumps([codec.encode_event(e) for e in said]))
        ]

    def batch_named() -> object:
        return [
            named.decode_object(v[1])
            for v in cast(
                list[Any],
                codec.loads(
                    codec.dumps([["Said", named.encode_object(e)] for e in said])
                ),
            )
        ]

    print(f"{n} Said events, best of {rounds}, microseconds per event:")
    print(f"  positional ({len(data) / n:.0f} bytes an event):")
    print(f"    encode_event      {best(rounds, n, encode):6.2f}")
    print(f"    decode_event      {best(rounds, n, decode):6.2f}")
    print(f"    with dumps/loads  {best(rounds, n, batch):6.2f}  (all four)")
    print(f"  named fields ({len(named_data) / n:.0f} bytes an event):")
    print(f"    encode            {best(rounds, n, encode_named):6.2f}")
    print(f"    decode            {best(rounds, n, decode_named):6.2f}")
    print(f"    with dumps/loads  {best(rounds, n, batch_named):6.2f}  (all four)")


if __name__ == "__main__":
    main()
