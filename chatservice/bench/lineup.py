"""
C{--server NAME=CMD}: several servers side by side in one run, each a
fresh process for every run, alternating at every point C{--rounds} times,
as C{--compare} does for two; then the medians, and each server's
deliveries against the first's.

A contender also has its protocol, so that one lineup can hold ours over
IRC, ngircd and InspIRCd, and ours over the line protocol
(C{--also-line}): what the IRC front end costs, measured in the same run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from chatservice.bench.launch import PORT_PATTERN, launched
from chatservice.bench.moderator import moderated
from chatservice.bench.options import Options, Point, point_label
from chatservice.bench.point import run_point
from chatservice.bench.progress import Progress
from chatservice.bench.report import _num, _table, dump, format_points
from chatservice.bench.results import PointResult


@dataclass(frozen=True)
class Contender:
    """
    One server of a lineup, and how to speak to it; with C{moderator}, a
    moderator in its lobby setting C{bans} bans and C{mutes} mutes first
    (L{chatservice.bench.moderator}).
    """

    label: str
    command: list[str]
    protocol: str
    pattern: re.Pattern[bytes] = PORT_PATTERN
    moderator: bool = False
    bans: int = 0
    mutes: int = 0


@dataclass
class Lineup:
    """One point of a lineup: every round of every server, by label."""

    receivers: int
    senders: int
    rate: float | None
    runs: dict[str, list[PointResult]] = field(default_factory=dict)

    def deliveries_per_s(self, label: str) -> float:
        return statistics.median(r.deliveries_per_s for r in self.runs[label])

    def p99_ms(self, label: str) -> float | None:
        values = [
            r.latency_p99_ms for r in self.runs[label] if r.latency_p99_ms is not None
        ]
        return statistics.median(values) if values else None

    def median(self, label: str, name: str) -> float | None:
        values = [getattr(r, name) for r in self.runs[label]]
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    @property
    def ok(self) -> bool:
        return all(r.ok for runs in self.runs.values() for r in runs)

    def summary(self) -> dict[str, Any]:
        first = next(iter(self.runs))
        return {
            "point": point_label(self.receivers, self.senders, self.rate),
            "rate": self.rate,
            "ok": self.ok,
            "servers": {
                label: {
                    "deliveries_per_s": self.deliveries_per_s(label),
                    "versus_first": _ratio(
                        self.deliveries_per_s(first), self.deliveries_per_s(label)
                    ),
                    "p50_ms": self.median(label, "latency_p50_ms"),
                    "p99_ms": self.p99_ms(label),
                    "runs": [dump(r) for r in runs],
                }
                for label, runs in self.runs.items()
            },
        }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _short(value: float) -> str:
    """A figure of one round, short enough for a column of several."""
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def run_lineup(
    points: list[Point],
    contenders: list[Contender],
    rounds: int,
    options: Options,
    progress: Progress,
) -> list[Lineup]:
    """
    Run every contender, a fresh server each run, in turn at every point,
    C{rounds} times: so that whatever else the machine is doing weighs on
    all alike.
    """
    lineups = []
    for receivers, senders, rate in points:
        lineup = Lineup(receivers, senders, rate)
        for contender in contenders:
            lineup.runs[contender.label] = []
        for _ in range(rounds):
            for contender in contenders:
                own = dataclasses.replace(
                    options, protocol=contender.protocol, rate=rate
                )
                with contextlib.ExitStack() as stack:
                    server = stack.enter_context(
                        launched(
                            contender.command,
                            contender.label,
                            pattern=contender.pattern,
                        )
                    )
                    if contender.moderator:
                        stack.enter_context(
                            moderated(server, contender.bans, contender.mutes)
                        )
                    lineup.runs[contender.label].append(
                        run_point(server, receivers, senders, own, progress)
                    )
        lineups.append(lineup)
    return lineups


def format_lineups(lineups: list[Lineup]) -> str:
    """Every round's table, then the medians of each server at each point."""
    header = [
        "point",
        "server",
        "deliveries/s",
        "each round",
        "first/this",
        "p50 ms",
        "p99 ms",
        "srv CPU%",
        "gen CPU%",
        "lost/corrupt",
    ]
    rows = []
    every: list[PointResult] = []
    for lineup in lineups:
        labels = list(lineup.runs)
        first = lineup.deliveries_per_s(labels[0])
        for label in labels:
            runs = lineup.runs[label]
            rows.append(
                [
                    point_label(lineup.receivers, lineup.senders, lineup.rate),
                    label,
                    _num(lineup.deliveries_per_s(label)),
                    "/".join(_short(r.deliveries_per_s) for r in runs),
                    _num(_ratio(first, lineup.deliveries_per_s(label)), 2),
                    _num(lineup.median(label, "latency_p50_ms"), 2),
                    _num(lineup.p99_ms(label), 2),
                    _num(lineup.median(label, "server_cpu_pct")),
                    _num(lineup.median(label, "generator_cpu_pct")),
                    f"{sum(r.lost for r in runs)}/{sum(r.corrupt for r in runs)}"
                    + ("" if all(r.ok for r in runs) else " (!)"),
                ]
            )
        # In the order they ran.
        turns = zip(*lineup.runs.values(), strict=True)
        every += [run for turn in turns for run in turn]
    return (
        "Every round:\n"
        + format_points(every)
        + "\n\nMedians over the rounds:\n"
        + _table(rows, header)
    )
