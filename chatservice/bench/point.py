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
from chatservice.bench.results import PointResult
from chatservice.bench.shared import layout

CAL_ROUND_SECONDS = 1.0

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
    server: Server,
    receivers: int,
    senders: int,
    options: Options | None = None,
    progress: Progress | None = None,
) -> PointResult:
    """
    Measure C{server} with C{receivers} receivers and C{senders} senders in
    one room; see the module docstring.
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
    pid = server.pid
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
    if pid is not None:
        result.server_rss_before_kib = proc_status_kib(pid, "VmRSS")
    i_min, i_total, i_started, _, length = layout(senders, workers)
    shared = shared_array(length)
    for w in range(workers):
        shared[i_min + w] = NOBODY
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
            server_pid=pid,
            server_fds=None if pid is None else proc_fd_count(pid),
            deadline_ns=deadline_ns,
            checksum=options.checksum,
            kernel_time=options.kernel_time,
            slow=options.slow if w == 0 else 0,
            irc=options.protocol == "irc",
            irc_send=options.irc_send,
            ws=options.protocol == "ws",
        )
        for w in range(workers)
    ]
    crew = Crew(server, specs, shared, deadline)
    try:
        crew.await_connected(progress, label, i_started, connections)
        with_senders = [w for w, spec in enumerate(specs) if spec.sender_ids]
        result.calibration_rounds = _calibrate(
            crew, with_senders, connections, label, progress
        )
        if pid is not None:
            rss = proc_status_kib(pid, "VmRSS")
            result.server_rss_connected_kib = rss
            if rss is not None and result.server_rss_before_kib is not None:
                result.rss_per_connection_bytes = (
                    (rss - result.server_rss_before_kib) * 1024 / connections
                )
        _measure(crew, result, options, label, i_total, progress)
        progress.show(f"{label}: draining")
        finals = _drain(crew, options)
        if pid is not None:
            result.server_peak_rss_kib = proc_status_kib(pid, "VmHWM")
    finally:
        progress.clear()
        crew.close()
    reports: list[WorkerResult] = [m["result"][0] for m in crew.messages]
    result.lines_sent = sum(sent for sent, _ in finals.values())
    _add_up(result, reports, options)
    result.server_tracebacks = server.tracebacks()
    result.limit = result.guess_limit(os.cpu_count() or 1)
    return result


def _calibrate(
    crew: Crew,
    with_senders: list[int],
    connections: int,
    label: str,
    progress: Progress,
) -> int:
    """
    Have the workers in C{with_senders} say calibration lines, a round a
    second or so, until every connection has heard the latest round from
    every sender; return how many rounds that took.
    """
    cal_round = 0
    round_ends = 0.0
    while True:
        states = [m.get("calibrated", (-1, 0)) for m in crew.messages]
        if all(lowest >= cal_round >= 1 for lowest, _ in states):
            return cal_round
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
) -> None:
    """
    Start the senders together a moment from now, let them send for
    C{options.seconds}, and take the server's CPU over that window.
    """
    pid = crew.server.pid
    senders = result.senders
    workers = result.processes
    shared = crew.shared
    t0 = time.monotonic() + 0.2
    t_end = t0 + options.seconds
    crew.send(("start", int(t0 * 1e9), int(t_end * 1e9)))
    crew.sleep_until(t0)
    server_cpu0 = None if pid is None else proc_cpu_times(pid)
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
    server_cpu1 = None if pid is None else proc_cpu_times(pid)
    if server_cpu0 is not None and server_cpu1 is not None:
        span = options.seconds / 100
        result.server_cpu_pct = (sum(server_cpu1) - sum(server_cpu0)) / span
        result.server_cpu_system_pct = (server_cpu1[1] - server_cpu0[1]) / span


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
