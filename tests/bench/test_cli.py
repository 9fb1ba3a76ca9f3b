"""
Tests for L{chatservice.bench.cli}: C{chat-bench}'s options and the modes
that run two servers side by side, as a user runs them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from chatservice.bench import cli
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


class OptionTests(SynchronousTestCase):
    def test_points(self) -> None:
        self.assertEqual(
            cli.parse_points("1000x10, 100x5,10x1"),
            [(1000, 10), (100, 5), (10, 1)],
        )


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
