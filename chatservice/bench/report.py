"""
What C{chat-bench} prints: the tables for people, and the records as JSON.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from chatservice.bench.options import point_label
from chatservice.bench.results import Comparison, IdleResult, PointResult


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _cpu(total: float | None, system: float | None) -> str:
    if total is None:
        return "-"
    return f"{total:.0f} ({_num(system)})"


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def format_points(results: list[PointResult]) -> str:
    header = [
        "server",
        "point",
        "deliveries/s",
        "sent/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lost",
        "corrupt",
        "dup",
        "reord",
        "srv CPU% (sys)",
        "gen CPU% (sys)",
        "peak RSS MiB",
        "RSS/conn KiB",
        "limit",
    ]
    rows = [
        [
            r.server,
            point_label(r.receivers, r.senders, r.rate),
            _num(r.deliveries_per_s),
            _num(r.lines_per_s),
            _num(r.latency_p50_ms, 2),
            _num(r.latency_p99_ms, 2),
            _num(r.latency_max_ms, 1),
            str(r.lost),
            str(r.corrupt),
            str(r.duplicates),
            str(r.reordered),
            _cpu(r.server_cpu_pct, r.server_cpu_system_pct),
            _cpu(r.generator_cpu_pct, r.generator_cpu_system_pct),
            _mib(r.server_peak_rss_kib),
            _num(
                None
                if r.rss_per_connection_bytes is None
                else r.rss_per_connection_bytes / 1024,
                1,
            ),
            r.limit,
        ]
        for r in results
    ]
    first = results[0]
    rates = {r.rate for r in results}
    if rates == {None}:
        pace = "as fast as the window allows"
    elif len(rates) == 1:
        pace = f"paced at {first.rate:g} lines/s in all"
    else:
        pace = (
            "as fast as the window allows, or at RxS@RATE paced at RATE lines/s in all"
        )
    notes = [
        f"{first.size}-byte lines, window {first.window} lines per sender, "
        f"{pace}, {first.seconds:g} s measured, {first.processes} generator "
        "processes"
        + (
            f", {first.slow} slow readers present (connected, never reading)."
            if first.slow
            else "."
        ),
        "deliveries/s: lines received by every connection (receivers, and senders "
        "hearing the other senders) per second of the window; CPU% is of one "
        "core (the generator's summed over its processes); limit: what most "
        "likely bounded the run (server or generator: a core busy; machine: "
        f"all {os.cpu_count()} cores busy between them; window: nobody busy, "
        "lines in flight were the limit; pace: --rate met).",
    ]
    for r in results:
        problems = _problems(r)
        if problems:
            notes.append(
                f"{r.server} {point_label(r.receivers, r.senders, r.rate)}: "
                + "; ".join(problems)
            )
    return _table(rows, header) + "\n\n" + "\n".join(notes)


def _problems(r: PointResult) -> list[str]:
    """What to say about a run besides its figures."""
    problems = []
    if r.disconnected:
        problems.append(f"{r.disconnected} connections closed by the server")
    if r.incomplete:
        problems.append(f"{r.incomplete} connections ended inside a line")
    if r.noise:
        problems.append(f"{r.noise} connections had stray bytes at the barrier")
    if r.server_tracebacks:
        problems.append(f"{r.server_tracebacks} tracebacks in the server's log")
    if r.limit == "generator":
        problems.append(
            "a generator process used "
            f"{r.generator_cpu_max_process_pct:.0f}% of a core: the generator "
            "was the limit (try --processes)"
        )
    elif r.limit == "machine" and r.generator_cpu_pct > (r.server_cpu_pct or 0):
        problems.append(
            f"the generator used more CPU ({r.generator_cpu_pct:.0f}%) than "
            f"the server ({r.server_cpu_pct:.0f}%) and every core was busy: "
            "this measures the machine more than the server"
        )
    return problems


def format_comparisons(
    comparisons: list[Comparison], names: tuple[str, str] = ("ours", "minimal")
) -> str:
    paced = any(c.rate is not None for c in comparisons)
    a, b = names
    header = ["point", f"{a} deliveries/s", f"{b} deliveries/s", f"{a}/{b}"]
    if paced:
        header += [f"{a} p99 ms", f"{b} p99 ms"]
    header.append("lost/corrupt")
    rows = []
    for c in comparisons:
        row = [
            point_label(c.receivers, c.senders, c.rate),
            _num(c.ours_deliveries_per_s),
            _num(c.peer_deliveries_per_s),
            _num(c.ratio, 2),
        ]
        if paced:
            row += [_num(c.ours_p99_ms, 2), _num(c.peer_p99_ms, 2)]
        runs = c.ours + c.peer
        row.append(
            f"{sum(r.lost for r in runs)}/{sum(r.corrupt for r in runs)}"
            + ("" if c.ok else " (!)")
        )
        rows.append(row)
    # In the order they ran.
    every = [
        run
        for c in comparisons
        for pair in zip(c.ours, c.peer, strict=True)
        for run in pair
    ]
    return (
        "Every round:\n"
        + format_points(every)
        + "\n\nMedians over the rounds:\n"
        + _table(rows, header)
    )


def format_idle(result: IdleResult) -> str:
    rows = [
        ("server", result.server),
        ("connections asked for", f"{result.connections:,}"),
        ("opened", f"{result.opened:,}"),
        ("still open when measured", f"{result.held:,}"),
        (
            "accepted by the server",
            "-" if result.accepted is None else f"{result.accepted:,}",
        ),
        ("seconds to connect", f"{result.connect_seconds:.1f}"),
        ("seconds to settle", f"{result.settle_seconds:.1f}"),
        ("bytes the server sent them", f"{result.bytes_received:,}"),
        ("server RSS before, MiB", _mib(result.server_rss_before_kib)),
        ("server RSS after, MiB", _mib(result.server_rss_after_kib)),
        ("server peak RSS, MiB", _mib(result.server_peak_rss_kib)),
        (
            "RSS per connection, KiB",
            _num(
                None
                if result.rss_per_connection_bytes is None
                else result.rss_per_connection_bytes / 1024,
                2,
            ),
        ),
        ("server CPU seconds", _num(result.server_cpu_seconds, 2)),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def dump(value: Any) -> Any:
    """C{value} as what C{--json} prints for it."""
    if isinstance(value, PointResult | IdleResult):
        data = asdict(value)
        data["ok"] = value.ok
        return data
    if isinstance(value, Comparison):
        data = value.summary()
        data["ours"] = [dump(r) for r in value.ours]
        data["peer"] = [dump(r) for r in value.peer]
        return data
    return value
