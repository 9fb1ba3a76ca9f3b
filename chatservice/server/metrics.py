"""
C{--metrics}: the server's counts in the Prometheus text format, served at
C{/metrics} on a listener of its own.

The counts live in L{chatservice.core.stats.Stats}, and the number of
clients and rooms comes from a callable that C{makeService} passes in, so
that this module knows no front end; it only reads them when Prometheus
scrapes. C{prometheus_client}'s Twisted resource renders the page on a
thread of the reactor's pool, so the collector copies the numbers on the
reactor thread (which owns them) and formats the copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.twisted import MetricsResource
from twisted.internet.threads import blockingCallFromThread
from twisted.python import threadable
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Site

from chatservice.cluster.backplane import BackplaneStats
from chatservice.core.stats import Histogram, Stats

# Refusal reasons, so that each series exists (at 0) before the first one.
REFUSALS = ("max clients", "max per ip")

# The clients connected and the rooms with anyone in them, now.
Counts = Callable[[], tuple[int, int]]


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    clients: int
    rooms: int
    lines_received: int
    deliveries: int
    bytes_in: int
    bytes_out: int
    flood_delayed: int
    sendq_disconnects: int
    refused: dict[str, int]
    fanout: tuple[list[tuple[float, int]], float]
    history_writes: tuple[list[tuple[float, int]], float]


def _histogram(histogram: Histogram) -> tuple[list[tuple[float, int]], float]:
    return histogram.cumulative(), histogram.sum


def snapshot(stats: Stats, counts: Counts) -> MetricsSnapshot:
    """
    The numbers as they are now. Call on the reactor thread.
    """
    clients, rooms = counts()
    refused = dict.fromkeys(REFUSALS, 0)
    refused.update(stats.refused)
    return MetricsSnapshot(
        clients=clients,
        rooms=rooms,
        lines_received=stats.lines_received,
        deliveries=stats.deliveries,
        bytes_in=stats.bytes_in,
        bytes_out=stats.bytes_out,
        flood_delayed=stats.flood_delayed,
        sendq_disconnects=stats.sendq_disconnects,
        refused=refused,
        fanout=_histogram(stats.fanout),
        history_writes=_histogram(stats.history_writes),
    )


def _buckets(cumulative: list[tuple[float, int]]) -> list[tuple[str, float]]:
    return [
        ("+Inf" if bound == float("inf") else repr(bound), count)
        for bound, count in cumulative
    ]


def families(numbers: MetricsSnapshot) -> Iterator[Metric]:
    """
    The Prometheus metric families for C{numbers}.
    """
    yield GaugeMetricFamily(
        "chat_clients", "Clients connected and in the chat.", value=numbers.clients
    )
    yield GaugeMetricFamily(
        "chat_rooms", "Rooms with at least one member.", value=numbers.rooms
    )
    counters = [
        ("chat_lines_received", "Lines read from clients.", numbers.lines_received),
        (
            "chat_deliveries",
            "Lines queued for a recipient (a line said to N others counts N).",
            numbers.deliveries,
        ),
        ("chat_received_bytes", "Bytes read from clients.", numbers.bytes_in),
        ("chat_sent_bytes", "Bytes written to clients.", numbers.bytes_out),
        (
            "chat_flood_delayed_lines",
            "Lines held back by flood control.",
            numbers.flood_delayed,
        ),
        (
            "chat_sendq_disconnects",
            "Clients disconnected for not reading (SendQ exceeded).",
            numbers.sendq_disconnects,
        ),
    ]
    for name, documentation, value in counters:
        yield CounterMetricFamily(name, documentation, value=value)
    refused = CounterMetricFamily(
        "chat_refused_connections",
        "Connections refused by a limit.",
        labels=["reason"],
    )
    for reason, count in sorted(numbers.refused.items()):
        refused.add_metric([reason.replace(" ", "_")], count)
    yield refused
    histograms = [
        (
            "chat_fanout_seconds",
            "Time to fan out each room line: its turn's delivery to every recipient.",
            numbers.fanout,
        ),
        (
            "chat_history_write_seconds",
            "Time each group commit of history took on the database thread.",
            numbers.history_writes,
        ),
    ]
    for name, documentation, (cumulative, total) in histograms:
        yield HistogramMetricFamily(
            name, documentation, buckets=_buckets(cumulative), sum_value=total
        )


class ChatCollector(Collector):
    """
    Collects the chat's numbers for a L{CollectorRegistry}.
    """

    def __init__(self, stats: Stats, counts: Counts, reactor: Any) -> None:
        self.stats = stats
        self.counts = counts
        self.reactor = reactor

    def collect(self) -> Iterable[Metric]:
        if threadable.isInIOThread():
            numbers = snapshot(self.stats, self.counts)
        else:
            numbers = blockingCallFromThread(
                self.reactor, snapshot, self.stats, self.counts
            )
        return list(families(numbers))

    def describe(self) -> Iterable[Metric]:
        # Registering must not collect: that would call into the reactor
        # before it runs.
        return []


# The backplane's counts: (name, help, attribute).
_BACKPLANE_COUNTERS = (
    (
        "published_batches",
        "Batches this node published to the cluster log.",
        "published",
    ),
    (
        "received_batches",
        "Batches of the cluster log applied here, in order.",
        "received",
    ),
    (
        "recovered_batches",
        "Batches that arrived late (a gap) and were read back from the log.",
        "recovered",
    ),
    (
        "missed_batches",
        "Batches the log's window no longer held when a gap was filled.",
        "missed",
    ),
    ("lease_renewals", "Renewals of this node's nickname leases.", "renewals"),
    ("leases_lost", "Nickname leases found lost at renewal.", "claims_lost"),
    ("reconnects", "Connections to Redis made again after a loss.", "reconnects"),
    ("epoch_resets", "Times Redis was found to have lost its data.", "resets"),
    (
        "dropped_batches",
        "Batches dropped because the queue waiting for Redis was full.",
        "dropped",
    ),
)


def backplane_families(stats: BackplaneStats) -> list[Metric]:
    """The backplane's metric families (issue 15), from a copy of C{stats}."""
    found: list[Metric] = [
        CounterMetricFamily(f"chat_backplane_{name}", doc, value=getattr(stats, attr))
        for name, doc, attr in _BACKPLANE_COUNTERS
    ]
    found.append(
        GaugeMetricFamily(
            "chat_backplane_round_trip_seconds",
            "The latest round trip to Redis (a heartbeat).",
            value=stats.round_trip,
        )
    )
    found.append(
        GaugeMetricFamily(
            "chat_backplane_nodes",
            "Nodes of the cluster beating now, this one included.",
            value=len(stats.nodes),
        )
    )
    return found


class BackplaneCollector(Collector):
    """Collects a cluster node's backplane counts."""

    def __init__(self, stats: BackplaneStats, reactor: Any) -> None:
        self.stats = stats
        self.reactor = reactor

    def _copy(self) -> BackplaneStats:
        return replace(self.stats, nodes=set(self.stats.nodes))

    def collect(self) -> Iterable[Metric]:
        if threadable.isInIOThread():
            copy = self._copy()
        else:
            copy = blockingCallFromThread(self.reactor, self._copy)
        return backplane_families(copy)

    def describe(self) -> Iterable[Metric]:
        return []


class _Root(Resource):
    """
    Only C{/metrics} is here; anything else is a plain 404.
    """

    def getChild(self, path: bytes, request: Any) -> IResource:
        return notFound()

    def render(self, request: Any) -> bytes:
        page: bytes = notFound().render(request)
        return page


class _QuietSite(Site):
    """
    A site that does not log each request: Prometheus scrapes every few
    seconds, and those lines would drown the chat's own.
    """

    def log(self, request: Any) -> None:
        pass


def metrics_site(
    stats: Stats,
    counts: Counts,
    reactor: Any,
    backplane: BackplaneStats | None = None,
) -> Site:
    """
    A web site with the chat's metrics, and the process's own (CPU, memory,
    open files), at C{/metrics}: C{stats}, and the number of clients and
    rooms that C{counts} returns; and a cluster node's C{backplane}.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ChatCollector(stats, counts, reactor))
    if backplane is not None:
        registry.register(BackplaneCollector(backplane, reactor))
    ProcessCollector(registry=registry)
    root = _Root()
    root.putChild(b"metrics", MetricsResource(registry))
    site = _QuietSite(root)
    site.noisy = False
    return site
