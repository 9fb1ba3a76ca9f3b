"""
What a run measured: one point, C{--idle}, or one point of C{--compare}
(every round of both servers).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass
class NodeResult:
    """
    What one node of several did in a run's measured window: the lines its
    own connections counted, and its CPU and memory.
    """

    label: str
    connections: int
    deliveries_per_s: float = 0.0
    cpu_pct: float | None = None
    cpu_system_pct: float | None = None
    rss_before_kib: int | None = None
    peak_rss_kib: int | None = None

    @property
    def deliveries_per_cpu_s(self) -> float | None:
        """Lines delivered to its connections per second of its CPU."""
        return _per_cpu_s(self.deliveries_per_s, self.cpu_pct)


def _per_cpu_s(per_s: float, cpu_pct: float | None) -> float | None:
    return per_s / (cpu_pct / 100) if cpu_pct else None


@dataclass
class PointResult:
    """What one run at one point measured."""

    server: str
    receivers: int
    senders: int
    size: int
    window: int
    rate: float | None
    seconds: float
    processes: int
    slow: int = 0
    # Lines received by every connection (receivers, and senders hearing the
    # other senders) during the measured window, and per second.
    deliveries: int = 0
    deliveries_per_s: float = 0.0
    receiver_deliveries_per_s: float = 0.0
    lines_sent: int = 0
    lines_per_s: float = 0.0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_max_ms: float | None = None
    latency_samples: int = 0
    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    corrupt: int = 0
    reordered: int = 0
    disconnected: int = 0
    incomplete: int = 0
    noise: int = 0
    calibration_rounds: int = 0
    delivered_form: str = ""
    server_cpu_pct: float | None = None
    server_cpu_system_pct: float | None = None
    generator_cpu_pct: float = 0.0
    generator_cpu_system_pct: float = 0.0
    generator_reads_per_s: float = 0.0
    generator_cpu_max_process_pct: float = 0.0
    server_rss_before_kib: int | None = None
    server_rss_connected_kib: int | None = None
    server_peak_rss_kib: int | None = None
    rss_per_connection_bytes: float | None = None
    server_tracebacks: int = 0
    limit: str = ""
    # With several nodes (chatservice.bench.cluster): each node's figures
    # (the server_ figures above are their sums), the latency of the
    # sampled lines heard on a node other than their sender's, and what
    # Redis (commands and calls per second, by command) and a throwaway
    # PostgreSQL did in the window.
    nodes: list[NodeResult] = field(default_factory=list)
    cross_latency_p50_ms: float | None = None
    cross_latency_p99_ms: float | None = None
    cross_latency_samples: int = 0
    redis_commands_per_s: float | None = None
    redis_calls_per_s: dict[str, float] = field(default_factory=dict)
    redis_cpu_pct: float | None = None
    database_cpu_pct: float | None = None

    @property
    def deliveries_per_cpu_s(self) -> float | None:
        """
        Deliveries per second of the server's CPU (with several nodes, of
        all of theirs): what fan-out costs, whatever bounded the run.
        """
        return _per_cpu_s(self.deliveries_per_s, self.server_cpu_pct)

    def guess_limit(self, cpus: int) -> str:
        """
        What most likely bounded the throughput, from the CPU figures: the
        server (a core busy), the generator (a process's core busy), the
        machine (every core busy between them), the pace asked for, or,
        with nobody busy, the window (lines in flight times latency).
        """
        server = self.server_cpu_pct
        # With several nodes, a node's core busy bounds the run.
        busiest = (
            max((n.cpu_pct or 0.0 for n in self.nodes), default=0.0)
            if self.nodes
            else server
        )
        if self.rate is not None and self.lines_per_s >= 0.97 * self.rate:
            return "pace"
        if busiest is not None and busiest >= 90:
            return "server"
        if self.generator_cpu_max_process_pct >= 90:
            return "generator"
        if server is None:
            return "?"
        services = (self.redis_cpu_pct or 0.0) + (self.database_cpu_pct or 0.0)
        if server + services + self.generator_cpu_pct >= 85 * cpus:
            return "machine"
        return "window"

    @property
    def connections(self) -> int:
        return self.receivers + self.senders

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.corrupt
            or self.duplicates
            or self.reordered
            or self.disconnected
            or self.incomplete
            or self.noise
            or self.server_tracebacks
        )


@dataclass
class IdleResult:
    """What C{--idle N} measured."""

    server: str
    connections: int
    processes: int
    opened: int = 0
    held: int = 0
    accepted: int | None = None
    connect_seconds: float = 0.0
    settle_seconds: float = 0.0
    bytes_received: int = 0
    server_rss_before_kib: int | None = None
    server_rss_after_kib: int | None = None
    server_peak_rss_kib: int | None = None
    rss_per_connection_bytes: float | None = None
    server_cpu_seconds: float | None = None
    server_tracebacks: int = 0

    @property
    def ok(self) -> bool:
        return self.held == self.connections and not self.server_tracebacks


@dataclass
class Comparison:
    """One point of C{--compare}: every round of both servers."""

    receivers: int
    senders: int
    rate: float | None
    ours: list[PointResult] = field(default_factory=list)
    peer: list[PointResult] = field(default_factory=list)

    @property
    def ours_deliveries_per_s(self) -> float:
        return statistics.median(r.deliveries_per_s for r in self.ours)

    @property
    def peer_deliveries_per_s(self) -> float:
        return statistics.median(r.deliveries_per_s for r in self.peer)

    @property
    def ratio(self) -> float | None:
        peer = self.peer_deliveries_per_s
        return self.ours_deliveries_per_s / peer if peer else None

    @staticmethod
    def _p99(runs: list[PointResult]) -> float | None:
        values = [r.latency_p99_ms for r in runs if r.latency_p99_ms is not None]
        return statistics.median(values) if values else None

    @property
    def ours_p99_ms(self) -> float | None:
        return self._p99(self.ours)

    @property
    def peer_p99_ms(self) -> float | None:
        return self._p99(self.peer)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.ours + self.peer)

    def summary(self) -> dict[str, Any]:
        return {
            "point": f"{self.receivers}x{self.senders}",
            "rate": self.rate,
            "ours_deliveries_per_s": self.ours_deliveries_per_s,
            "peer_deliveries_per_s": self.peer_deliveries_per_s,
            "ratio": self.ratio,
            "ours_p99_ms": self.ours_p99_ms,
            "peer_p99_ms": self.peer_p99_ms,
            "ok": self.ok,
        }
