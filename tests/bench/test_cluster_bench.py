"""
End to end: the installed C{chat-bench --nodes 2} against the test Redis
and PostgreSQL (C{source .ci/services}; see L{tests.support.services}:
without them this skips, or fails in CI), a tiny point, every line
checked: nothing lost, repeated, reordered or garbled, though half of
every line's deliveries crossed nodes.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from urllib.parse import urlsplit, urlunsplit

from twisted.trial.unittest import SynchronousTestCase

from tests.support.helpers import BIN, make_temp_dir
from tests.support.services import postgres_url, redis_endpoint

CHAT_BENCH = BIN / "chat-bench"


def fresh_database(testcase: SynchronousTestCase) -> str:
    """
    A new, empty database on the test PostgreSQL, dropped in the test's
    cleanup: the URL the nodes are given.
    """
    import psycopg

    server = postgres_url(testcase)
    name = f"chat_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True, connect_timeout=10) as db:
        db.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(server, autocommit=True, connect_timeout=10) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    testcase.addCleanup(drop)
    return urlunsplit(urlsplit(server)._replace(path="/" + name))


class TwoNodesTests(SynchronousTestCase):
    def test_two_nodes(self) -> None:
        """
        Two nodes of ours on the test services, 10 receivers and 2
        senders spread over them for a second: exit status 0, every line
        delivered once and in order to every connection on both nodes,
        each node delivering to its own connections, lines timed as they
        cross nodes, and Redis's commands counted.
        """
        redis = redis_endpoint(self)
        database = fresh_database(self)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run(
            [
                str(CHAT_BENCH),
                *("--nodes", "2", "--redis", redis, "--database", database),
                # A key prefix no other test uses.
                f"--node-args=--redis-prefix bench:{uuid.uuid4().hex[:12]}:",
                *("--points", "10x2", "--seconds", "1", "--drain", "5"),
                *("--processes", "1", "--json"),
            ],
            cwd=make_temp_dir(self),
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
        )
        out = done.stdout.decode()
        self.assertEqual(done.returncode, 0, out + done.stderr.decode())
        [run] = json.loads(out)["runs"]
        self.assertTrue(run["ok"], run)
        self.assertEqual(
            [run[k] for k in ("lost", "duplicates", "reordered", "corrupt")],
            [0, 0, 0, 0],
        )
        self.assertGreater(run["lines_sent"], 0)
        self.assertEqual(run["expected"], run["received"])
        self.assertEqual([n["connections"] for n in run["nodes"]], [6, 6])
        for node in run["nodes"]:
            self.assertGreater(node["deliveries_per_s"], 0, node)
            self.assertIsNotNone(node["cpu_pct"], node)
            self.assertIsNotNone(node["peak_rss_kib"], node)
        self.assertGreater(run["cross_latency_samples"], 0)
        self.assertGreater(run["redis_commands_per_s"], 0)
        self.assertTrue(run["redis_calls_per_s"])
