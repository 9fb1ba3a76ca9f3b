"""
The modes with several nodes of one chat: C{--nodes N} (a fresh cluster of
ours at every point), C{--nodes N --compare-single} (that cluster and one
node alone, alternating at every point C{--rounds} times), and several
C{--target}s (nodes already running); and the tables they print: each
node's share of the work and CPU, the lines that crossed nodes, Redis's
commands against the lines said, and, against a single node, what the
backplane costs a node per delivery.

With C{--share}, a third side runs at every point: one node alone at a
node's share of it (the receivers divided among the nodes, every sender),
which is the fan-out each node of the cluster does: each delivers every
line to its own receivers. A single node at the whole point does each
line's own work (reading, rendering, recording it) for all the receivers
at once, so against it a node of the cluster also pays for the split;
against the share, only for the backplane.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from chatservice.bench.cluster import Cluster, Services, launched_cluster
from chatservice.bench.launch import Server, launched, ours_command, port_pattern
from chatservice.bench.options import Options, Point, point_label
from chatservice.bench.point import run_point
from chatservice.bench.progress import Progress
from chatservice.bench.report import _num, _table, dump, format_points
from chatservice.bench.results import PointResult

Launcher = Callable[[], AbstractContextManager[Server | Cluster]]


def cluster_launcher(
    shared: Services,
    nodes: int,
    protocol: str,
    progress: Progress,
    extra: tuple[str, ...] = (),
) -> Launcher:
    """
    A fresh cluster of C{nodes} of ours on C{shared} for each run, C{extra}
    added to each node's arguments.
    """

    @contextlib.contextmanager
    def launch() -> Iterator[Server | Cluster]:
        progress.show(f"starting {nodes} nodes")
        with launched_cluster(shared, nodes, "cluster", protocol, extra) as cluster:
            yield cluster

    return launch


def single_launcher(protocol: str) -> Launcher:
    """One node of ours alone, as C{chat-bench} measures it by default."""

    @contextlib.contextmanager
    def launch() -> Iterator[Server | Cluster]:
        with launched(
            ours_command(protocol), "single", pattern=port_pattern(protocol)
        ) as server:
            yield server

    return launch


def share_of(nodes: int) -> Callable[[int], int]:
    """A node's receivers, given a point's, with C{nodes} nodes (rounded up)."""
    return lambda receivers: -(-receivers // nodes)


def run_points(
    points: list[Point], launch: Launcher, options: Options, progress: Progress
) -> list[PointResult]:
    """Every point once, each against a fresh server from C{launch}."""
    results = []
    for receivers, senders, rate in points:
        paced = dataclasses.replace(options, rate=rate)
        with launch() as server:
            results.append(run_point(server, receivers, senders, paced, progress))
    return results


@dataclass
class Versus:
    """One point of C{--compare-single}: every round of both."""

    receivers: int
    senders: int
    rate: float | None
    cluster: list[PointResult] = field(default_factory=list)
    single: list[PointResult] = field(default_factory=list)
    # With --share: a node's share of the point, alone.
    share_receivers: int | None = None
    share: list[PointResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.cluster + self.single + self.share)

    def median(self, side: str, name: str) -> float | None:
        """The median of figure C{name} over C{side}'s rounds, known ones."""
        runs: list[PointResult] = getattr(self, side)
        known = [v for v in (getattr(r, name) for r in runs) if v is not None]
        return statistics.median(known) if known else None

    def node_median(self, node: int, name: str) -> float | None:
        """The median over the rounds of node C{node}'s figure C{name}."""
        known = [
            v
            for r in self.cluster
            if node < len(r.nodes)
            for v in [getattr(r.nodes[node], name)]
            if v is not None
        ]
        return statistics.median(known) if known else None

    @property
    def nodes(self) -> int:
        return max((len(r.nodes) for r in self.cluster), default=0)

    def ratio(self) -> float | None:
        cluster = self.median("cluster", "deliveries_per_s")
        single = self.median("single", "deliveries_per_s")
        return cluster / single if cluster is not None and single else None

    def costs(self, against: str = "single") -> list[float | None]:
        """
        What the backplane costs each node: the share of a single node's
        deliveries per CPU-second that it does not reach (0.3: 30% fewer
        deliveries for the same CPU). Medians over the rounds. C{against}
        is C{"single"} (alone at the point) or C{"share"} (alone at a
        node's share of it).
        """
        single = self.median(against, "deliveries_per_cpu_s")
        found: list[float | None] = []
        for n in range(self.nodes):
            node = self.node_median(n, "deliveries_per_cpu_s")
            found.append(None if node is None or not single else 1 - node / single)
        return found

    def summary(self) -> dict[str, Any]:
        return {
            "point": point_label(self.receivers, self.senders, self.rate),
            "rate": self.rate,
            "ok": self.ok,
            "cluster_deliveries_per_s": self.median("cluster", "deliveries_per_s"),
            "single_deliveries_per_s": self.median("single", "deliveries_per_s"),
            "ratio": self.ratio(),
            "cluster_p99_ms": self.median("cluster", "latency_p99_ms"),
            "cross_p99_ms": self.median("cluster", "cross_latency_p99_ms"),
            "single_p99_ms": self.median("single", "latency_p99_ms"),
            "backplane_cost": self.costs(),
            "share_receivers": self.share_receivers,
            "share_deliveries_per_cpu_s": self.median("share", "deliveries_per_cpu_s"),
            "backplane_cost_against_share": self.costs("share") if self.share else None,
            "redis_commands_per_s": self.median("cluster", "redis_commands_per_s"),
            "lines_per_s": self.median("cluster", "lines_per_s"),
            "cluster": [dump(r) for r in self.cluster],
            "single": [dump(r) for r in self.single],
            "share": [dump(r) for r in self.share],
        }


def run_versus(
    points: list[Point],
    cluster: Launcher,
    single: Launcher,
    rounds: int,
    options: Options,
    progress: Progress,
    share_of: Callable[[int], int] | None = None,
) -> list[Versus]:
    """
    The cluster and the single node, each fresh for every run, alternately
    at every point, C{rounds} times each: so that whatever else the machine
    is doing weighs on both alike. With C{share_of} (a node's receivers,
    given the point's), the single node at a node's share of the point
    too, in turn with them.
    """
    found = []
    for receivers, senders, rate in points:
        versus = Versus(receivers, senders, rate)
        paced = dataclasses.replace(options, rate=rate)
        sides = [
            (versus.cluster, cluster, receivers),
            (versus.single, single, receivers),
        ]
        if share_of is not None:
            versus.share_receivers = share_of(receivers)
            sides.append((versus.share, single, versus.share_receivers))
        for _ in range(rounds):
            for runs, launch, count in sides:
                with launch() as server:
                    runs.append(run_point(server, count, senders, paced, progress))
        found.append(versus)
    return found


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _calls(calls: dict[str, float], top: int = 4) -> str:
    """The commands Redis ran most, per second: C{evalsha 812, ...}."""
    busiest = sorted(calls.items(), key=lambda item: -item[1])[:top]
    return ", ".join(f"{name} {per_s:,.0f}" for name, per_s in busiest) or "-"


def _faults(runs: list[PointResult]) -> str:
    """Lost, duplicated, reordered and corrupt lines over C{runs}: C{0/0/0/0}."""
    return "/".join(
        str(sum(getattr(r, name) for r in runs))
        for name in ("lost", "duplicates", "reordered", "corrupt")
    )


def _per_line(commands: float | None, lines: float | None) -> float | None:
    return commands / lines if commands is not None and lines else None


def format_nodes(results: list[PointResult]) -> str:
    """
    For every run with several nodes: each node's connections, deliveries,
    CPU and memory; then the lines that crossed nodes, and Redis.
    """
    node_rows = []
    cluster_rows = []
    for r in results:
        if not r.nodes:
            continue
        point = point_label(r.receivers, r.senders, r.rate)
        for n in r.nodes:
            node_rows.append(
                [
                    point,
                    n.label,
                    str(n.connections),
                    _num(n.deliveries_per_s),
                    "-"
                    if n.cpu_pct is None
                    else f"{n.cpu_pct:.0f} ({_num(n.cpu_system_pct)})",
                    _num(n.deliveries_per_cpu_s),
                    "-" if n.peak_rss_kib is None else f"{n.peak_rss_kib / 1024:.1f}",
                ]
            )
        cluster_rows.append(
            [
                point,
                _num(r.latency_p50_ms, 2),
                _num(r.latency_p99_ms, 2),
                _num(r.cross_latency_p50_ms, 2),
                _num(r.cross_latency_p99_ms, 2),
                _num(r.lines_per_s),
                _num(r.redis_commands_per_s),
                _num(_per_line(r.redis_commands_per_s, r.lines_per_s), 2),
                _calls(r.redis_calls_per_s),
                _num(r.redis_cpu_pct),
                _num(r.database_cpu_pct),
            ]
        )
    if not node_rows:
        return ""
    return (
        "Each node:\n"
        + _table(
            node_rows,
            [
                "point",
                "node",
                "conns",
                "deliveries/s",
                "CPU% (sys)",
                "deliv/CPU-s",
                "peak RSS MiB",
            ],
        )
        + "\n\nAcross nodes, and Redis:\n"
        + _table(
            cluster_rows,
            [
                "point",
                "p50 ms",
                "p99 ms",
                "cross p50",
                "cross p99",
                "lines/s",
                "Redis cmds/s",
                "cmds/line",
                "busiest Redis commands, calls/s",
                "Redis CPU%",
                "PG CPU%",
            ],
        )
        + "\n\ncross: the sampled lines heard on a node other than their "
        "sender's; deliv/CPU-s: lines delivered to the node's own connections "
        "per second of its CPU; Redis cmds/s counts a script's own calls too; "
        "PG CPU% is a throwaway PostgreSQL's only."
    )


def format_cluster(results: list[PointResult]) -> str:
    """C{--nodes} without a comparison: the runs, then each node's share."""
    return format_points(results) + "\n\n" + format_nodes(results)


def format_versus(found: list[Versus]) -> str:
    """
    Every round's tables, then the medians of the cluster against the
    single node at every point: throughput and latency, then cost.
    """
    every = [
        run
        for v in found
        for pair in zip(v.cluster, v.single, strict=True)
        for run in pair
    ]
    speed_rows = []
    cost_rows = []
    for v in found:
        point = point_label(v.receivers, v.senders, v.rate)
        runs = v.cluster + v.single
        speed_rows.append(
            [
                point,
                _num(v.median("cluster", "deliveries_per_s")),
                _num(v.median("single", "deliveries_per_s")),
                _num(v.ratio(), 2),
                _num(v.median("cluster", "latency_p50_ms"), 2),
                _num(v.median("cluster", "latency_p99_ms"), 2),
                _num(v.median("cluster", "cross_latency_p99_ms"), 2),
                _num(v.median("single", "latency_p50_ms"), 2),
                _num(v.median("single", "latency_p99_ms"), 2),
                _faults(runs) + ("" if v.ok else " (!)"),
            ]
        )
        nodes = range(v.nodes)
        cost_rows.append(
            [
                point,
                "/".join(_num(v.node_median(n, "cpu_pct")) for n in nodes),
                _num(v.median("single", "server_cpu_pct")),
                "/".join(_num(v.node_median(n, "deliveries_per_cpu_s")) for n in nodes),
                _num(v.median("single", "deliveries_per_cpu_s")),
                "/".join(_pct(c) for c in v.costs()),
                _num(v.median("cluster", "lines_per_s")),
                _num(v.median("cluster", "redis_commands_per_s")),
                _num(
                    _per_line(
                        v.median("cluster", "redis_commands_per_s"),
                        v.median("cluster", "lines_per_s"),
                    ),
                    2,
                ),
                _num(v.median("cluster", "redis_cpu_pct")),
            ]
        )
    every += [run for v in found for run in v.share]
    return (
        "Every round:\n"
        + format_points(every)
        + "\n\n"
        + format_nodes(every)
        + "\n\nMedians over the rounds, cluster against a single node:\n"
        + _table(
            speed_rows,
            [
                "point",
                "cluster deliv/s",
                "single deliv/s",
                "cluster/single",
                "cl p50 ms",
                "cl p99 ms",
                "cross p99",
                "single p50",
                "single p99",
                "lost/dup/reord/corrupt",
            ],
        )
        + "\n\n"
        + _table(
            cost_rows,
            [
                "point",
                "node CPU%",
                "single CPU%",
                "node deliv/CPU-s",
                "single deliv/CPU-s",
                "backplane cost",
                "lines/s",
                "Redis cmds/s",
                "cmds/line",
                "Redis CPU%",
            ],
        )
        + "\n\nbackplane cost: the share of a single node's deliveries per "
        "CPU-second that a node of the cluster does not reach, each node "
        "(lines delivered to its own connections per second of its own CPU)."
        + format_share(found)
    )


def format_share(found: list[Versus]) -> str:
    """
    With C{--share}: each node against one node alone at a node's share of
    the point, the fan-out that node does.
    """
    rows = []
    for v in found:
        if v.share_receivers is None:
            continue
        nodes = range(v.nodes)
        rows.append(
            [
                point_label(v.receivers, v.senders, v.rate),
                point_label(v.share_receivers, v.senders, v.rate),
                _num(v.median("share", "server_cpu_pct")),
                _num(v.median("share", "deliveries_per_cpu_s")),
                "/".join(_num(v.node_median(n, "deliveries_per_cpu_s")) for n in nodes),
                "/".join(_pct(c) for c in v.costs("share")),
                _faults(v.share),
            ]
        )
    if not rows:
        return ""
    return (
        "\n\nAgainst one node alone at a node's share of the point "
        "(its receivers, every sender):\n"
        + _table(
            rows,
            [
                "point",
                "share",
                "share CPU%",
                "share deliv/CPU-s",
                "node deliv/CPU-s",
                "backplane cost",
                "lost/dup/reord/corrupt",
            ],
        )
        + "\n\nHere each node is compared with a process doing its fan-out "
        "alone: what is left is the backplane's own cost."
    )
