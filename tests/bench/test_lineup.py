"""
Tests for L{chatservice.bench.lineup} (C{--server NAME=CMD}): which runs a
lineup makes, in which order and with which options, and the table of
medians, in memory: the servers and the measurement are replaced by fakes
that record what they were asked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from chatservice.bench import lineup as lineup_module
from chatservice.bench.launch import Server
from chatservice.bench.lineup import Contender, format_lineups, run_lineup
from chatservice.bench.options import Options, Point
from chatservice.bench.progress import Progress
from chatservice.bench.results import PointResult


class FakeRuns:
    """Stands in for C{launched} and C{run_point}, and remembers the runs."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, int, int, Options]] = []

    @contextlib.contextmanager
    def launched(
        self, command: Sequence[str], label: str, **kw: Any
    ) -> Iterator[Server]:
        yield Server(label, "127.0.0.1", 1, None)

    def run_point(
        self,
        server: Server,
        receivers: int,
        senders: int,
        options: Options,
        progress: Progress,
    ) -> PointResult:
        self.runs.append((server.label, receivers, senders, options))
        n = len(self.runs)
        return PointResult(
            server=server.label,
            receivers=receivers,
            senders=senders,
            size=options.size,
            window=options.window,
            rate=options.rate,
            seconds=options.seconds,
            processes=1,
            deliveries_per_s=1e6 * n,
            lines_per_s=1000.0,
            latency_p50_ms=0.1 * n,
            latency_p99_ms=0.2 * n,
            server_cpu_pct=50.0,
        )


class LineupTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.fake = FakeRuns()
        self.patch(lineup_module, "launched", self.fake.launched)
        self.patch(lineup_module, "run_point", self.fake.run_point)
        self.contenders = [
            Contender("ours", ["twistd"], "irc"),
            Contender("ours-line", ["twistd"], "line"),
            Contender("ngircd", ["ngircd"], "irc"),
        ]

    def test_alternates_with_each_points_rate(self) -> None:
        """
        Every round runs every server in turn at a point before the next
        round; each run speaks its server's protocol, and is paced only at
        a point that has a rate.
        """
        points = [Point(1000, 10), Point(100, 1, 1000.0)]
        lineups = run_lineup(
            points, self.contenders, 2, Options(seconds=4), Progress(False)
        )
        self.assertEqual(
            [(label, r, s) for label, r, s, _ in self.fake.runs],
            [
                (label, r, s)
                for r, s in ((1000, 10), (100, 1))
                for _ in range(2)
                for label in ("ours", "ours-line", "ngircd")
            ],
        )
        self.assertEqual(
            [(o.protocol, o.rate, o.seconds) for _, _, _, o in self.fake.runs[:3]],
            [("irc", None, 4), ("line", None, 4), ("irc", None, 4)],
        )
        self.assertEqual(
            {(o.rate, o.seconds) for _, _, _, o in self.fake.runs[6:]}, {(1000.0, 4)}
        )
        self.assertEqual([x.rate for x in lineups], [None, 1000.0])
        self.assertEqual([len(x.runs["ngircd"]) for x in lineups], [2, 2])

    def test_medians_and_each_round(self) -> None:
        """
        The table of medians names a paced point with its rate, and shows
        every round's deliveries beside the median, and p50 and p99.
        """
        lineups = run_lineup(
            [Point(100, 1, 1000.0)],
            self.contenders[::2],
            3,
            Options(),
            Progress(False),
        )
        # Runs 1, 3, 5 were ours (1M, 3M, 5M deliveries/s); 2, 4, 6 ngircd.
        text = format_lineups(lineups)
        every, medians = text.split("Medians over the rounds:\n")
        self.assertEqual(every.count("100x1@1000"), 6)
        header, ours, ngircd = medians.splitlines()
        self.assertEqual(
            header.split()[:7],
            ["point", "server", "deliveries/s", "each", "round", "first/this", "p50"],
        )
        self.assertEqual(
            ours.split()[:7],
            [
                "100x1@1000",
                "ours",
                "3,000,000",
                "1.00M/3.00M/5.00M",
                "1.00",
                "0.30",
                "0.60",
            ],
        )
        self.assertEqual(
            ngircd.split()[:5],
            ["100x1@1000", "ngircd", "4,000,000", "2.00M/4.00M/6.00M", "0.75"],
        )
        summary = lineups[0].summary()
        self.assertEqual(summary["point"], "100x1@1000")
        self.assertEqual(summary["rate"], 1000.0)
        self.assertAlmostEqual(summary["servers"]["ours"]["p50_ms"], 0.3)
