"""
Tests for L{chatservice.bench.cli}: C{chat-bench}'s options and the modes
that run two servers side by side, as a user runs them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
from collections.abc import Iterator

from twisted.trial.unittest import SynchronousTestCase

from chatservice.bench import cli
from chatservice.bench.launch import Server
from chatservice.bench.results import PointResult
from tests.support.helpers import BIN, make_temp_dir

CHAT_BENCH = BIN / "chat-bench"

# A tiny run: one point of three receivers and one sender, half a second,
# one round, one generator process.
TINY_COMPARE = [
    "--points",
    "3x1",
    "--seconds",
    "0.5",
    "--drain",
    "3",
    "--rounds",
    "1",
    "--processes",
    "1",
]


@contextlib.contextmanager
def _no_server(*args: object, **kw: object) -> Iterator[Server]:
    yield Server("fake", "127.0.0.1", 1, None)


class OptionTests(SynchronousTestCase):
    def test_points(self) -> None:
        self.assertEqual(
            cli.parse_points("1000x10, 100x5,10x1"),
            [(1000, 10, None), (100, 5, None), (10, 1, None)],
        )

    def test_paced_points(self) -> None:
        """
        C{RxS@RATE} paces one point, so that one run holds the points at
        full speed and the paced one; tables name it so.
        """
        points = cli.parse_points("1000x10,100x1@1000, 10x1 @ 2.5")
        self.assertEqual(points, [(1000, 10, None), (100, 1, 1000.0), (10, 1, 2.5)])
        self.assertEqual(
            [str(p) for p in points], ["1000x10", "100x1@1000", "10x1@2.5"]
        )
        for bad in ("100x1@", "100x1@0", "100x1@-5", "100@1000", "100x1@1e3"):
            with self.assertRaises(argparse.ArgumentTypeError, msg=bad):
                cli.parse_points(bad)

    def test_rate_is_every_unpaced_points(self) -> None:
        """C{--rate} paces the points that have no rate of their own."""
        runs: list[tuple[int, int, float | None]] = []

        def run_point(  # type: ignore[no-untyped-def]
            server, receivers, senders, options, progress
        ) -> PointResult:
            runs.append((receivers, senders, options.rate))
            return PointResult(
                "fake", receivers, senders, 64, 200, options.rate, 1.0, 1
            )

        self.patch(cli, "run_point", run_point)
        self.patch(cli, "launched", _no_server)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = cli.main(["--points", "10x1@50,20x2", "--rate", "7", "--json"])
        self.assertEqual(status, 0)
        self.assertEqual(runs, [(10, 1, 50.0), (20, 2, 7.0)])
        rates = [run["rate"] for run in json.loads(out.getvalue())["runs"]]
        self.assertEqual(rates, [50.0, 7.0])


class HistoryModeTests(SynchronousTestCase):
    def test_history_compares_on_and_off(self) -> None:
        """
        C{--history} runs ours with history and with C{--no-history} at each
        point, and both deliver every line.
        """
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = cli.main(["--history", *TINY_COMPARE, "--json"])
        self.assertEqual(status, 0, out.getvalue())
        [point] = json.loads(out.getvalue())["points"]
        [on] = point["ours"]
        [off] = point["peer"]
        self.assertEqual((on["server"], off["server"]), ("ours", "no-history"))
        for run in (on, off):
            self.assertTrue(run["ok"], run)
            self.assertEqual(run["lost"], 0)
            self.assertGreater(run["deliveries"], 0)


class InstalledCompareTests(SynchronousTestCase):
    def test_compare_outside_a_checkout(self) -> None:
        """
        The installed C{chat-bench --compare}, started in a directory that
        is no checkout, finds the minimal peer in the installed package and
        prints the figures of both servers.
        """
        directory = make_temp_dir(self)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run(
            [str(CHAT_BENCH), "--compare", *TINY_COMPARE],
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
        )
        out = done.stdout.decode()
        self.assertEqual(done.returncode, 0, out + done.stderr.decode())
        medians = out.split("Medians over the rounds:\n")[1].splitlines()
        self.assertEqual(
            medians[0].split(),
            [
                "point",
                "ours",
                "deliveries/s",
                "minimal",
                "deliveries/s",
                "ours/minimal",
                "lost/corrupt",
            ],
        )
        row = re.fullmatch(r"3x1\s+([\d,]+)\s+([\d,]+)\s+[\d.]+\s+0/0", medians[1])
        assert row is not None, out
        ours, minimal = (int(figure.replace(",", "")) for figure in row.groups())
        self.assertGreater(ours, 0)
        self.assertGreater(minimal, 0)
        # Every round names both servers.
        self.assertRegex(out, r"\nours +3x1 ")
        self.assertRegex(out, r"\nminimal +3x1 ")
