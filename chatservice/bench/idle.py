"""
C{--idle N}: what N connections that never say anything cost the server.
"""

from __future__ import annotations

import time

from chatservice.bench.crew import Crew, shared_array
from chatservice.bench.launch import Server
from chatservice.bench.messages import WorkerSpec
from chatservice.bench.options import Options
from chatservice.bench.proc import proc_cpu_times, proc_fd_count, proc_status_kib
from chatservice.bench.progress import Progress
from chatservice.bench.results import IdleResult
from chatservice.bench.shared import layout


def run_idle(
    server: Server,
    connections: int,
    options: Options | None = None,
    progress: Progress | None = None,
) -> IdleResult:
    """
    Open C{connections} connections that never say anything, wait until the
    server has accepted them all and the traffic their arrival causes has
    died down, and measure the server's memory.
    """
    options = options or Options()
    progress = progress or Progress(False)
    workers = max(1, min(options.processes, connections))
    timeout = options.deadline(connections)
    deadline = time.monotonic() + timeout
    pid = server.pid
    result = IdleResult(server.label, connections, workers)
    fds_before = None
    cpu0 = None
    if pid is not None:
        result.server_rss_before_kib = proc_status_kib(pid, "VmRSS")
        fds_before = proc_fd_count(pid)
        cpu0 = proc_cpu_times(pid)
    _, _, i_started, _, length = layout(0, workers)
    shared = shared_array(length)
    base, extra = divmod(connections, workers)
    specs = [
        WorkerSpec(
            host=server.host,
            port=server.port,
            receivers=base + (w < extra),
            sender_ids=(),
            senders=0,
            workers=workers,
            size=options.size,
            window=0,
            rate_per_sender=None,
            watch=() if pid is None or fds_before is None else ((pid, fds_before),),
            deadline_ns=time.monotonic_ns() + int(timeout * 1e9),
            idle=True,
        )
        for w in range(workers)
    ]
    started = time.monotonic()
    crew = Crew(server, specs, shared, deadline)
    try:
        crew.await_connected(progress, f"{server.label} idle", i_started, connections)
        connected = time.monotonic()
        result.connect_seconds = connected - started
        result.opened = sum(m["connected"][0] for m in crew.messages)
        # Settle: everything accepted, and no traffic for half a second.
        while True:
            for m in crew.messages:
                m.pop("status", None)
            crew.send(("status",))
            crew.await_all("status", timeout=10.0)
            statuses = [m["status"] for m in crew.messages]
            held = sum(s[0] for s in statuses)
            heard = sum(s[1] for s in statuses)
            last_rx = max(s[3] for s in statuses) / 1e9
            accepted = None
            if pid is not None and fds_before is not None:
                fds = proc_fd_count(pid)
                accepted = None if fds is None else fds - fds_before
            now = time.monotonic()
            everyone = (
                accepted >= connections if accepted is not None else heard >= held
            )
            quiet = now - max(last_rx, connected) >= 0.5
            progress.show(
                f"{server.label} idle: {held} open, "
                f"{accepted if accepted is not None else heard} accepted, settling"
            )
            if (everyone and quiet) or held < result.opened:
                break
            if now - connected > 30 and quiet:
                # Cannot tell that it accepted them all; measure anyway.
                break
            crew.receive(0.25)
        result.settle_seconds = time.monotonic() - connected
        result.held = held
        result.accepted = accepted
        result.bytes_received = sum(s[2] for s in statuses)
        if pid is not None:
            result.server_rss_after_kib = proc_status_kib(pid, "VmRSS")
            result.server_peak_rss_kib = proc_status_kib(pid, "VmHWM")
            cpu1 = proc_cpu_times(pid)
            if cpu0 is not None and cpu1 is not None:
                result.server_cpu_seconds = sum(cpu1) - sum(cpu0)
            if (
                result.server_rss_after_kib is not None
                and result.server_rss_before_kib is not None
                and result.held
            ):
                result.rss_per_connection_bytes = (
                    (result.server_rss_after_kib - result.server_rss_before_kib)
                    * 1024
                    / result.held
                )
    finally:
        progress.clear()
        crew.close()
    result.server_tracebacks = server.tracebacks()
    return result
