"""
Tests for C{chat-bench}'s modes with several nodes
(L{chatservice.bench.clustered}, and their options in
L{chatservice.bench.cli}): what they refuse, how a run is spread over
nodes, and the cluster against a single node.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator

from twisted.trial.unittest import SynchronousTestCase

from chatservice.bench import cli, clustered
from chatservice.bench.cluster import Cluster, Services
from chatservice.bench.launch import MINIMAL_PEER, Server, launched, peer_command
from chatservice.bench.options import Options, Point
from chatservice.bench.progress import Progress
from chatservice.bench.results import NodeResult, PointResult
from chatservice.bench.services import RedisProbe


def _main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(list(argv))
    return status, out.getvalue(), err.getvalue()


class OptionTests(SynchronousTestCase):
    def test_refused(self) -> None:
        """
        What the modes with several nodes cannot do is refused before
        anything starts, with exit status 2 and the reason.
        """
        for argv, reason in [
            (["--compare-single"], "--compare-single compares the cluster"),
            (["--nodes", "2", "--share"], "--share is for --compare-single"),
            (["--apart"], "--apart takes two nodes or more"),
            (["--nodes", "1", "--apart"], "--apart takes two nodes or more"),
            (
                ["--nodes", "2", "--compare-single", "--share", "--apart"],
                "--apart and --share",
            ),
            (["--node-args", "--heartbeat 1"], "--node-args is for --nodes"),
            (["--redis", "unix:/r.sock"], "--redis is for --nodes"),
            (["--database", "postgresql://x@/y"], "--database is for --nodes"),
            (["--nodes", "2", "--database", "/tmp/x.sqlite3"], "postgresql://"),
            (["--nodes", "2", "--compare"], "a mode of their own"),
            (["--nodes", "2", "--idle", "5"], "a mode of their own"),
            (["--nodes", "2", "--target", "127.0.0.1:1"], "takes no"),
            (["--nodes", "2", "--server-command", "x"], "takes no"),
            (
                ["--target", "127.0.0.1:1", "--target", "127.0.0.1:2", "--history"],
                "a mode of their own",
            ),
            (
                [
                    *("--target", "127.0.0.1:1", "--target", "127.0.0.1:2"),
                    *("--server-pid", "1"),
                ],
                "one --server-pid per --target",
            ),
            (
                ["--target", "127.0.0.1:1", "--database", "postgresql://x@/y"],
                "--database is for --nodes",
            ),
        ]:
            status, out, err = _main(*argv)
            self.assertEqual(status, 2, argv)
            self.assertIn(reason, err, argv)
            self.assertEqual(out, "", argv)

    def test_parsed(self) -> None:
        """
        C{--target} and C{--server-pid} repeat, in order; C{--nodes},
        C{--redis}, C{--database} and C{--compare-single} are kept as given.
        """
        args = cli.parser().parse_args(
            [
                *("--target", "127.0.0.1:5", "--target", ":6"),
                *("--server-pid", "10", "--server-pid", "11"),
            ]
        )
        self.assertEqual(args.target, [("127.0.0.1", 5), ("127.0.0.1", 6)])
        self.assertEqual(args.server_pid, [10, 11])
        args = cli.parser().parse_args(
            [
                *("--nodes", "3", "--compare-single", "--redis", "unix:/r.sock"),
                *("--database", "postgresql://chat@/chat"),
            ]
        )
        self.assertEqual(
            (args.nodes, args.compare_single, args.redis, args.database),
            (3, True, "unix:/r.sock", "postgresql://chat@/chat"),
        )
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            cli.parser().parse_args(["--nodes", "0"])


class SpreadOverTargetsTests(SynchronousTestCase):
    def test_two_targets(self) -> None:
        """
        With two C{--target}s, the connections are spread over both: each
        node's connections count their own deliveries, and the lines heard
        on the other node than their sender's are timed apart. (Both
        targets here are one minimal peer, which relays every line to
        everyone, so every line is delivered whichever node it crossed.)
        """
        with launched(peer_command(MINIMAL_PEER), "minimal") as server:
            where = f"{server.host}:{server.port}"
            status, out, err = _main(
                *("--target", where, "--target", where),
                *("--points", "6x2", "--seconds", "0.5", "--drain", "3"),
                *("--processes", "2", "--json"),
            )
        self.assertEqual(status, 0, out + err)
        [run] = json.loads(out)["runs"]
        self.assertTrue(run["ok"], run)
        self.assertEqual([n["label"] for n in run["nodes"]], ["target-1", "target-2"])
        self.assertEqual([n["connections"] for n in run["nodes"]], [4, 4])
        by_node = sum(n["deliveries_per_s"] for n in run["nodes"])
        self.assertAlmostEqual(by_node, run["deliveries_per_s"])
        self.assertTrue(all(n["deliveries_per_s"] > 0 for n in run["nodes"]))
        # Half of each line's deliveries cross: some samples, not all.
        self.assertGreater(run["cross_latency_samples"], 0)
        self.assertLess(run["cross_latency_samples"], run["latency_samples"])
        self.assertIsNotNone(run["cross_latency_p99_ms"])


def _result(
    label: str, deliveries: float, cpu: float, nodes: list[tuple[float, float]]
) -> PointResult:
    """A run's result: deliveries/s and CPU%, and each node's."""
    result = PointResult(label, 10, 2, 64, 200, None, 1.0, 1)
    result.deliveries_per_s = deliveries
    result.lines_per_s = deliveries / 11
    result.server_cpu_pct = cpu
    result.latency_p99_ms = 1.0
    result.nodes = [
        NodeResult(f"{label}-b{n}", 6, per_s, cpu_pct)
        for n, (per_s, cpu_pct) in enumerate(nodes, 1)
    ]
    if nodes:
        result.redis_commands_per_s = result.lines_per_s * 3
        result.redis_calls_per_s = {"evalsha": 10.0, "publish": 10.0}
        result.cross_latency_p99_ms = 2.0
    return result


class VersusTests(SynchronousTestCase):
    def fake(self, results: list[PointResult]) -> list[str]:
        """
        Run chat-bench's cluster modes on fakes: services, nodes and runs
        that say what was asked of them in the list returned, and runs that
        give C{results} in turn.
        """
        events: list[str] = []

        @contextlib.contextmanager
        def services(redis: str | None, database: str | None) -> Iterator[Services]:
            events.append(f"services {redis} {database}")
            yield Services("unix:path=/r.sock", RedisProbe("/r.sock"))
            events.append("services stopped")

        @contextlib.contextmanager
        def launched_cluster(
            shared: Services,
            nodes: int,
            label: str,
            protocol: str = "line",
            extra: tuple[str, ...] = (),
        ) -> Iterator[Cluster]:
            events.append(f"{nodes} nodes {' '.join(extra)}")
            yield Cluster(
                label,
                [Server(f"{label}-b{n}", "127.0.0.1", n) for n in range(nodes)],
            )

        @contextlib.contextmanager
        def single(*args: object, **kw: object) -> Iterator[Server]:
            events.append("single")
            yield Server("single", "127.0.0.1", 9)

        rounds = iter(results)

        def run_point(  # type: ignore[no-untyped-def]
            server, receivers, senders, options, progress
        ) -> PointResult:
            apart = " apart" if options.apart else ""
            events.append(f"run {server.label} {receivers}x{senders}{apart}")
            return next(rounds)

        self.patch(cli, "services", services)
        self.patch(clustered, "launched_cluster", launched_cluster)
        self.patch(clustered, "launched", single)
        self.patch(clustered, "run_point", run_point)
        return events

    def test_alternates(self) -> None:
        """
        C{--nodes 2 --compare-single} starts the services once, then at
        every point runs the cluster and the single node alternately,
        C{--rounds} times, each fresh; and prints the medians with their
        ratio and what the backplane costs each node.
        """
        # Each node's deliveries per CPU-second: 1,250, 600 and 500 in the
        # three rounds; the single node's 1,000 in each.
        events = self.fake(
            [
                _result("cluster", 1000.0, 80.0, [(500.0, 40.0), (500.0, 40.0)]),
                _result("single", 1000.0, 100.0, []),
                _result("cluster", 900.0, 150.0, [(450.0, 75.0), (450.0, 75.0)]),
                _result("single", 1000.0, 100.0, []),
                _result("cluster", 800.0, 160.0, [(400.0, 80.0), (400.0, 80.0)]),
                _result("single", 1000.0, 100.0, []),
            ]
        )
        status, out, err = _main(
            *("--nodes", "2", "--compare-single", "--points", "10x2"),
            *("--rounds", "3", "--node-args", "--heartbeat 1"),
        )
        self.assertEqual(status, 0, err)
        self.assertEqual(
            events,
            [
                "services None None",
                *[
                    "2 nodes --heartbeat 1",
                    "run cluster 10x2",
                    "single",
                    "run single 10x2",
                ]
                * 3,
                "services stopped",
            ],
        )
        medians = out.split("cluster against a single node:\n")[1]
        speed, cost = medians.split("\n\n")[:2]
        # Medians: 900 against 1,000.
        self.assertRegex(speed, r"10x2\s+900\s+1,000\s+0\.90\s")
        self.assertIn("0/0/0/0", speed)
        # A node's deliveries per CPU-second, medians 600 (450 / 0.75) and
        # 1,000 for the single node: the backplane costs 40%.
        self.assertRegex(cost, r"10x2\s+75/75\s+100\s+600/600\s+1,000\s+40%/40%")

    def test_share(self) -> None:
        """
        C{--share} runs the single node at a node's share of the point (its
        receivers, every sender) in turn with the others, and compares each
        node with it too.
        """
        events = self.fake(
            [
                _result("cluster", 1000.0, 80.0, [(500.0, 40.0), (500.0, 40.0)]),
                _result("single", 1000.0, 50.0, []),
                _result("single", 500.0, 50.0, []),
            ]
        )
        status, out, err = _main(
            *("--nodes", "2", "--compare-single", "--share", "--points", "11x2"),
            *("--rounds", "1"),
        )
        self.assertEqual(status, 0, err)
        self.assertEqual(
            events,
            [
                "services None None",
                "2 nodes ",
                "run cluster 11x2",
                "single",
                "run single 11x2",
                "single",
                "run single 6x2",
                "services stopped",
            ],
        )
        # Each node: 500 / 0.4 = 1,250 deliveries per CPU-second; alone at
        # the point 2,000 (cost 38%), at a node's share 1,000 (none).
        self.assertRegex(out, r"11x2\s+40/40\s+50\s+1,250/1,250\s+2,000\s+38%/38%")
        share = out.split("at a node's share of the point")[1]
        self.assertRegex(share, r"11x2\s+6x2\s+50\s+1,000\s+1,250/1,250\s+-25%/-25%")

    def test_apart(self) -> None:
        """
        C{--apart} reaches every run of the cluster: each puts the senders
        on the first node and the receivers on the others.
        """
        events = self.fake(
            [
                _result("cluster", 1000.0, 80.0, [(0.0, 10.0), (1000.0, 40.0)]),
                _result("single", 1000.0, 50.0, []),
            ]
        )
        status, out, err = _main(
            *("--nodes", "2", "--compare-single", "--apart", "--points", "11x2"),
            *("--rounds", "1"),
        )
        self.assertEqual(status, 0, err)
        self.assertIn("run cluster 11x2 apart", events)
        # The receiving node: 1,000 / 0.4 = 2,500 deliveries per
        # CPU-second, against 2,000 alone.
        self.assertRegex(out, r"11x2\s+10/40\s+50\s+0/2,500\s+2,000\s+100%/-25%")

    def test_costs(self) -> None:
        """
        The backplane's cost is per node, against the single node's
        deliveries per CPU-second; unknown where a CPU is.
        """
        versus = clustered.Versus(10, 2, None)
        versus.cluster.append(
            _result("cluster", 1000.0, 80.0, [(700.0, 50.0), (300.0, 30.0)])
        )
        versus.single.append(_result("single", 1000.0, 100.0, []))
        costs = versus.costs()
        self.assertAlmostEqual(costs[0] or 0, 1 - 1400 / 1000)
        self.assertAlmostEqual(costs[1] or 0, 1 - 1000 / 1000)
        versus.single[0].server_cpu_pct = None
        self.assertEqual(versus.costs(), [None, None])
        summary = versus.summary()
        self.assertEqual(summary["point"], "10x2")
        self.assertEqual(len(summary["cluster"][0]["nodes"]), 2)


class PointsTests(SynchronousTestCase):
    def test_run_points(self) -> None:
        """C{--nodes} alone: each point once, each on a fresh cluster."""
        launches: list[str] = []

        @contextlib.contextmanager
        def launch() -> Iterator[Server | Cluster]:
            launches.append("cluster")
            yield Cluster("cluster", [Server("b1", "127.0.0.1", 1)])

        def run_point(  # type: ignore[no-untyped-def]
            server, receivers, senders, options, progress
        ) -> PointResult:
            return _result(
                "cluster", 10.0 * receivers, 50.0, [(10.0 * receivers, 50.0)]
            )

        self.patch(clustered, "run_point", run_point)
        results = clustered.run_points(
            [Point(10, 1), Point(20, 1, 5.0)], launch, Options(), Progress(False)
        )
        self.assertEqual(launches, ["cluster", "cluster"])
        self.assertEqual([r.deliveries_per_s for r in results], [100.0, 200.0])
        text = clustered.format_cluster(results)
        self.assertIn("Each node:", text)
        self.assertIn("evalsha 10, publish 10", text)
