#!/usr/bin/env python3
"""
What a room's ban and mute lists cost the chat core, in process, with no
sockets: the figures chat-bench's --bans cannot give on two busy cores.

For each room size it builds two rooms of R members, rendered by the line
front end's renderer into sessions that keep nothing: one with no lists,
one with 1,000 bans (and, with --mutes, 1,000 mutes, which makes every
line go through the speaking check). Then, alternating between the two (each
going first every other round) so that whatever else the machine does
weighs on both, it has S senders say
lines and flushes each turn, and prints nanoseconds per delivery and the
ratio. It also times entering a room with 1,000 bans against one with
none: the one place bans are matched.

    python bench/moderation-cost.py
    python bench/moderation-cost.py --members 1000,100,10 --lines 200 --rounds 5 --mutes

Bounded: about --deliveries deliveries (at least --lines lines a sender)
a round, --rounds rounds. It measures the
installed package (pip install . first), as chat-bench does.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from chatservice.bench.moderator import masks
from chatservice.core.chat import Chat
from chatservice.core.rooms import Member, Room
from chatservice.frontends.line.wire import LineRenderer

LISTS = 1000


class NullSession:
    """A session that takes what it is given and keeps nothing."""

    def __init__(self, renderer: LineRenderer, address: str) -> None:
        self.renderer = renderer
        self.address = address

    def deliver(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def room_of(members: int, lists: bool, mutes: bool) -> tuple[Chat, Room, list[Member]]:
    renderer = LineRenderer()
    chat = Chat()
    people = [
        chat.connect(NullSession(renderer, "127.0.0.1"), f"user{n}")
        for n in range(members)
    ]
    room = chat.join(people[0], "bench")
    if lists:
        for mask in masks(LISTS, "ban"):
            chat.add_mask(people[0], room, "ban", mask)
        if mutes:
            for mask in masks(LISTS, "mute"):
                chat.add_mask(people[0], room, "quiet", mask)
    for member in people[1:]:
        chat.join(member, "bench")
    chat.flush()
    return chat, room, people


def fan_out(chat: Chat, room: Room, senders: list[Member], lines: int) -> float:
    """Nanoseconds per delivery, saying C{lines} lines from each sender."""
    text = "x" * 40
    gc.disable()
    start = time.perf_counter_ns()
    for _ in range(lines):
        for sender in senders:
            chat.say_all(sender, room, (text,))
        chat.flush()
    elapsed = time.perf_counter_ns() - start
    gc.enable()
    deliveries = lines * len(senders) * (len(room.members) - 1)
    return elapsed / deliveries


def entering(lists: bool, joins: int) -> float:
    """Microseconds per entry into a room with or without bans."""
    chat, _, people = room_of(1, lists, False)
    renderer = people[0].renderer
    newcomers = [
        chat.connect(NullSession(renderer, f"10.9.{n // 256}.{n % 256}"), f"new{n}")  # type: ignore[arg-type]
        for n in range(joins)
    ]
    gc.disable()
    start = time.perf_counter_ns()
    for member in newcomers:
        chat.join(member, "bench", announce=False)
    elapsed = time.perf_counter_ns() - start
    gc.enable()
    return elapsed / joins / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", default="1000,100,10")
    parser.add_argument("--senders", type=int, default=5)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mutes", action="store_true")
    args = parser.parse_args()
    label = f"{LISTS} bans" + (f" + {LISTS} mutes" if args.mutes else "")
    print(f"ns per delivery, median of {args.rounds} alternating rounds")
    print(f"{'members':>8} {'no lists':>10} {label:>20} {'none/lists':>11}")
    for members in (int(n) for n in args.members.split(",")):
        plain = room_of(members, False, args.mutes)
        listed = room_of(members, True, args.mutes)
        senders = min(args.senders, members - 1)
        # About the same deliveries at every size, so small rooms are not
        # timed on a few microseconds.
        lines = max(args.lines, args.deliveries // (senders * (members - 1)))
        times: dict[bool, list[float]] = {False: [], True: []}
        pair = [(False, plain), (True, listed)]
        for turn in range(args.rounds):
            # ABBA: neither goes first every time.
            for lists, (chat, room, people) in pair if turn % 2 == 0 else pair[::-1]:
                times[lists].append(fan_out(chat, room, people[1 : senders + 1], lines))
        none, some = (statistics.median(times[k]) for k in (False, True))
        print(f"{members:>8} {none:>10.1f} {some:>20.1f} {none / some:>11.3f}")
    plain_entry = statistics.median(entering(False, 500) for _ in range(args.rounds))
    listed_entry = statistics.median(entering(True, 500) for _ in range(args.rounds))
    print(
        f"entering a room: {plain_entry:.1f} us with no bans, "
        f"{listed_entry:.1f} us with {LISTS} bans"
    )


if __name__ == "__main__":
    main()
