"""
One measurement at one point: R receivers and S senders in one room.

A run has four phases:

  1. I{Connect}: the worker processes open the connections, paced so that
     the server's accept queue never overflows.
  2. I{Calibrate}: every sender says a calibration line, round after round,
     until every connection has seen the latest round from every sender;
     from it each connection learns how the server frames each sender's
     lines, and everything before it (welcome and join lines) is skipped.
  3. I{Measure}: every connection switches to counting at a barrier; the
     senders start together and stop after C{--seconds}.
  4. I{Drain}: the workers are told how many lines each sender sent and
     read until every connection has all it should (or C{--drain} seconds
     pass).
"""

from __future__ import annotations

import os
import time

from chatservice.bench.cluster import Cluster
from chatservice.bench.connection import NOBODY
from chatservice.bench.crew import Crew, shared_array
from chatservice.bench.errors import BenchError
from chatservice.bench.latency import percentile_ms
from chatservice.bench.launch import Server
from chatservice.bench.messages import WorkerResult, WorkerSpec
from chatservice.bench.options import Options
from chatservice.bench.payload import MIN_SIZE
from chatservice.bench.proc import proc_cpu_times, proc_fd_count, proc_status_kib
from chatservice.bench.progress import Progress
from chatservice.bench.results import NodeResult, PointResult
from chatservice.bench.services import redis_figures
from chatservice.bench.shared import layout
from chatservice.bench.spread import Spread, spread

CAL_ROUND_SECONDS = 1.0
# Calibration rounds, at least (see _calibrate).
CAL_ROUNDS = 2

# The counts of every worker that a point's result adds up.
SUMMED = (
    "expected",
    "lost",
    "duplicates",
    "corrupt",
    "reordered",
    "disconnected",
    "incomplete",
    "noise",
)


def run_point(
    server: Server | Cluster,
    receivers: int,
    senders: int,
    options: Options | None = None,
    progress: Progress | None = None,
) -> PointResult:
    """
    Measure C{server} with C{receivers} receivers and C{senders} senders in
    one room; see the module docstring. With a L{Cluster}, the connections
    are spread over its nodes (L{spread}), and the result has each node's
    figures too.
    """
    options = options or Options()
    progress = progress or Progress(False)
    if receivers < 1 or senders < 1:
        raise BenchError("a point needs at least one receiver and one sender")
    if options.size < MIN_SIZE:
        raise BenchError(f"--size must be at least {MIN_SIZE} bytes")
    if senders > 0xFFFF:
        raise BenchError("at most 65535 senders")
    connections = receivers + senders
    workers = max(1, min(options.processes, connections))
    deadline = time.monotonic() + options.deadline(connections)
    deadline_ns = time.monotonic_ns() + int(options.deadline(connections) * 1e9)
    cluster = server if isinstance(server, Cluster) else None
    nodes = server.nodes if isinstance(server, Cluster) else [server]
    pids = [node.pid for node in nodes]
    label = f"{server.label} {receivers}x{senders}"
    result = PointResult(
        server=server.label,
        receivers=receivers,
        senders=senders,
        size=options.size,
        window=options.window,
        rate=options.rate,
        seconds=options.seconds,
        processes=workers,
        slow=options.slow,
    )
    rss_before = [_rss(pid, "VmRSS") for pid in pids]
    result.server_rss_before_kib = _total(rss_before)
    i_min, i_total, i_started, _, length = layout(senders, workers)
    shared = shared_array(length)
    for w in range(workers):
        shared[i_min + w] = NOBODY
    where = spread(
        receivers, senders, len(nodes), options.apart and cluster is not None
    )
    targets = () if cluster is None else tuple((n.host, n.port) for n in nodes)
    fds = [None if pid is None else proc_fd_count(pid) for pid in pids]
    watch = tuple(
        (pid, n) for pid, n in zip(pids, fds, strict=True) if pid and n is not None
    )
    # Connection i goes to worker i % workers: receivers first, then
    # senders.
    specs = [
        WorkerSpec(
            host=server.host,
            port=server.port,
            receivers=len(range(w, receivers, workers)),
            sender_ids=tuple(
                i - receivers for i in range(w, connections, workers) if i >= receivers
            ),
            senders=senders,
            workers=workers,
            size=options.size,
            window=options.window,
            rate_per_sender=None if options.rate is None else options.rate / senders,
            watch=watch if len(watch) == len(nodes) else (),
            deadline_ns=deadline_ns,
            checksum=options.checksum,
            kernel_time=options.kernel_time,
            slow=options.slow if w == 0 else 0,
            irc=options.protocol == "irc",
            irc_send=options.irc_send,
            ws=options.protocol == "ws",
            targets=targets,
            receiver_nodes=where.for_worker(w, workers)[0] if targets else (),
            sender_nodes=where.senders if targets else (),
            node_totals=where.totals() if targets else (),
        )
        for w in range(workers)
    ]
    crew = Crew(server, specs, shared, deadline)
    figures = _Readings(nodes, cluster)
    try:
        crew.await_connected(progress, label, i_started, connections)
        with_senders = [w for w, spec in enumerate(specs) if spec.sender_ids]
        result.calibration_rounds = _calibrate(
            crew,
            with_senders,
            connections,
            label,
            progress,
            # A node of several may rename a newcomer just after it
            # arrived (another node's newcomer won its guest name): the
            # last round comes a second after the first.
            pause=cluster is not None,
        )
        rss = _total([_rss(pid, "VmRSS") for pid in pids])
        result.server_rss_connected_kib = rss
        if rss is not None and result.server_rss_before_kib is not None:
            result.rss_per_connection_bytes = (
                (rss - result.server_rss_before_kib) * 1024 / connections
            )
        _measure(crew, result, options, label, i_total, progress, figures)
        progress.show(f"{label}: draining")
        finals = _drain(crew, options)
        peaks = [_rss(pid, "VmHWM") for pid in pids]
        result.server_peak_rss_kib = _total(peaks)
    finally:
        progress.clear()
        crew.close()
    reports: list[WorkerResult] = [m["result"][0] for m in crew.messages]
    result.lines_sent = sum(sent for sent, _ in finals.values())
    _add_up(result, reports, options)
    if cluster is not None:
        _add_up_nodes(result, reports, options, figures, where, rss_before, peaks)
    result.server_tracebacks = server.tracebacks()
    result.limit = result.guess_limit(os.cpu_count() or 1)
    if not result.ok:
        for node in nodes:
            node.keep_log = True
    return result


def _rss(pid: int | None, key: str) -> int | None:
    return None if pid is None else proc_status_kib(pid, key)


def _total(values: list[int | None]) -> int | None:
    """The sum of C{values}; None if one is not known."""
    known = [v for v in values if v is not None]
    return sum(known) if len(known) == len(values) else None


class _Readings:
    """
    The CPU of every node (and, with a cluster, what Redis and a throwaway
    PostgreSQL did) over the measured window: read at its start and end.
    """

    def __init__(self, nodes: list[Server], cluster: Cluster | None) -> None:
        self.pids = [node.pid for node in nodes]
        self.cluster = cluster
        self.cpu: list[list[tuple[float, float] | None]] = []
        self.redis: list[dict[str, str]] = []
        self.database: list[float | None] = []

    def read(self) -> None:
        self.cpu.append(
            [None if pid is None else proc_cpu_times(pid) for pid in self.pids]
        )
        cluster = self.cluster
        if cluster is None:
            return
        if cluster.redis is not None:
            try:
                self.redis.append(cluster.redis.info())
            except BenchError:
                # Without the figures, the run is still a run.
                self.redis.append({})
        if cluster.postgres is not None:
            self.database.append(cluster.postgres.cpu_seconds())

    def node_cpu(self, node: int, span: float) -> tuple[float, float] | None:
        """Node C{node}'s CPU and system CPU over the window, in % of a core."""
        before, after = self.cpu[0][node], self.cpu[-1][node]
        if before is None or after is None:
            return None
        return (sum(after) - sum(before)) / span, (after[1] - before[1]) / span


def _calibrate(
    crew: Crew,
    with_senders: list[int],
    connections: int,
    label: str,
    progress: Progress,
    pause: bool = False,
) -> int:
    """
    Have the workers in C{with_senders} say calibration lines until every
    connection has heard the latest round from every sender, two rounds
    at least; return how many rounds that took. A round not heard by all
    is said again a second or so later.

    Every connection learns each sender's framing from the last line it
    heard from it, and the first round only shows that every connection is
    in the room: a connection the server took in after a sender's line
    (its accept queue is not our connect) may be given that line as
    history, framed otherwise (ours: C{[lobby] (2026-12-03 12:20:36)
    <guest3> }). The second round is said once all have heard the first,
    at once, or with C{pause} a round's time later.
    """
    cal_round = 0
    round_ends = 0.0
    while True:
        states = [m.get("calibrated", (-1, 0)) for m in crew.messages]
        heard = cal_round >= 1 and all(lowest >= cal_round for lowest, _ in states)
        if heard and cal_round >= CAL_ROUNDS:
            return cal_round
        if heard and not pause:
            round_ends = 0.0
        closed = sum(closed for _, closed in states)
        if closed:
            raise BenchError(
                f"the server closed connections ({closed} so far, of "
                f"{connections}) before the measurement (a connection limit?)"
            )
        if time.monotonic() >= round_ends:
            if cal_round >= 20:
                raise BenchError(
                    f"after {cal_round} rounds of calibration lines, some "
                    "connections still have not heard every sender: does "
                    "the server relay every line to everyone else?"
                )
            cal_round += 1
            crew.send(("cal", cal_round), only=with_senders)
            round_ends = time.monotonic() + CAL_ROUND_SECONDS + connections / 2000
            progress.show(f"{label}: calibrating (round {cal_round})")
        crew.receive(0.05)


def _measure(
    crew: Crew,
    result: PointResult,
    options: Options,
    label: str,
    i_total: int,
    progress: Progress,
    figures: _Readings,
) -> None:
    """
    Start the senders together a moment from now, let them send for
    C{options.seconds}, and take the server's CPU over that window (every
    node's, and what Redis and PostgreSQL did, with a cluster).
    """
    senders = result.senders
    workers = result.processes
    shared = crew.shared
    t0 = time.monotonic() + 0.2
    t_end = t0 + options.seconds
    crew.send(("start", int(t0 * 1e9), int(t_end * 1e9)))
    crew.sleep_until(t0)
    figures.read()
    last_time, last_lines, last_sent = t0, 0, 0
    while True:
        now = time.monotonic()
        if now >= t_end:
            break
        crew.receive(min(1.0, t_end - now))
        now = time.monotonic()
        if progress.enabled and now - last_time >= 0.99 and now < t_end:
            lines = crew.total(i_total, workers)
            sent = sum(shared[s] for s in range(senders))
            span = now - last_time
            progress.show(
                f"{label}: {now - t0:4.0f}/{options.seconds:g} s  "
                f"{(lines - last_lines) / span:12,.0f} deliveries/s  "
                f"{(sent - last_sent) / span:10,.0f} lines/s sent"
            )
            last_time, last_lines, last_sent = now, lines, sent
    figures.read()
    span = options.seconds / 100
    cpu = [figures.node_cpu(n, span) for n in range(len(figures.pids))]
    if all(c is not None for c in cpu):
        result.server_cpu_pct = sum(c[0] for c in cpu if c is not None)
        result.server_cpu_system_pct = sum(c[1] for c in cpu if c is not None)


def _drain(crew: Crew, options: Options) -> dict[int, tuple[int, int]]:
    """
    Once every sender has stopped, tell the workers what each sent and wait
    for their results; return what each sender sent (lines, byte sum).
    """
    crew.await_all("stopped", timeout=10.0 + options.drain)
    finals: dict[int, tuple[int, int]] = {}
    for m in crew.messages:
        finals.update(m["stopped"][0])
    drain_ends = time.monotonic_ns() + int(options.drain * 1e9)
    crew.send(("finals", finals, drain_ends))
    crew.await_all("result", timeout=options.drain + 10.0)
    return finals


def _add_up(result: PointResult, reports: list[WorkerResult], options: Options) -> None:
    """Put what every worker counted into C{result}."""
    histogram = [sum(h) for h in zip(*(r.histogram for r in reports), strict=True)]
    result.lines_per_s = result.lines_sent / options.seconds
    result.deliveries = sum(r.window_lines for r in reports)
    result.deliveries_per_s = result.deliveries / options.seconds
    result.receiver_deliveries_per_s = (
        sum(r.window_receiver_lines for r in reports) / options.seconds
    )
    result.latency_samples = sum(histogram)
    result.latency_p50_ms = percentile_ms(histogram, 0.50)
    result.latency_p99_ms = percentile_ms(histogram, 0.99)
    if result.latency_samples:
        result.latency_max_ms = max(r.max_latency_us for r in reports) / 1000
    for name in SUMMED:
        setattr(result, name, sum(getattr(r, name) for r in reports))
    result.received = sum(r.lines for r in reports)
    forms = {r.delivered_form for r in reports if r.delivered_form}
    result.delivered_form = " | ".join(sorted(forms))
    span = options.seconds / 100
    result.generator_cpu_pct = sum(r.cpu_window for r in reports) / span
    result.generator_reads_per_s = (
        sum(r.window_reads for r in reports) / options.seconds
    )
    result.generator_cpu_system_pct = sum(r.cpu_window_system for r in reports) / span
    result.generator_cpu_max_process_pct = (
        max(r.cpu_window for r in reports) / options.seconds * 100
    )


def _add_up_nodes(
    result: PointResult,
    reports: list[WorkerResult],
    options: Options,
    figures: _Readings,
    where: Spread,
    rss_before: list[int | None],
    peaks: list[int | None],
) -> None:
    """Put each node's figures, and the cluster's, into C{result}."""
    seconds = options.seconds
    span = seconds / 100
    assert figures.cluster is not None
    by_node = [
        sum(n) for n in zip(*(r.window_lines_by_node for r in reports), strict=True)
    ]
    for n, node in enumerate(figures.cluster.nodes):
        cpu = figures.node_cpu(n, span)
        result.nodes.append(
            NodeResult(
                label=node.label,
                connections=where.receivers.count(n) + where.senders.count(n),
                deliveries_per_s=by_node[n] / seconds,
                cpu_pct=None if cpu is None else cpu[0],
                cpu_system_pct=None if cpu is None else cpu[1],
                rss_before_kib=rss_before[n],
                peak_rss_kib=peaks[n],
            )
        )
    cross = [sum(h) for h in zip(*(r.cross_histogram for r in reports), strict=True)]
    result.cross_latency_samples = sum(cross)
    result.cross_latency_p50_ms = percentile_ms(cross, 0.50)
    result.cross_latency_p99_ms = percentile_ms(cross, 0.99)
    if len(figures.redis) == 2 and all(figures.redis):
        redis = redis_figures(*figures.redis)
        result.redis_commands_per_s = redis.commands / seconds
        result.redis_calls_per_s = {
            name: calls / seconds for name, calls in redis.calls.items()
        }
        result.redis_cpu_pct = redis.cpu_seconds / span
    if len(figures.database) == 2:
        before, after = figures.database
        if before is not None and after is not None:
            result.database_cpu_pct = (after - before) / span
