"""
The C{chat-bench} command: its options, and C{main}, which runs the points
(or C{--idle}, or C{--compare} and C{--history}) and prints the tables.

How to use it is in C{docs/chat-bench.md}.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from chatservice.bench.cluster import Cluster, services
from chatservice.bench.clustered import (
    cluster_launcher,
    format_cluster,
    format_versus,
    run_points,
    run_versus,
    share_of,
    single_launcher,
)
from chatservice.bench.errors import BenchError
from chatservice.bench.idle import run_idle
from chatservice.bench.launch import (
    HOST,
    MINIMAL_PEER,
    NO_HISTORY,
    PORT_PATTERN,
    Server,
    label_for,
    launched,
    ours_command,
    peer_command,
    port_pattern,
)
from chatservice.bench.lineup import Contender, format_lineups, run_lineup
from chatservice.bench.options import Options, Point
from chatservice.bench.payload import MIN_SIZE
from chatservice.bench.point import run_point
from chatservice.bench.proc import raise_open_files_limit
from chatservice.bench.progress import Progress
from chatservice.bench.report import (
    dump,
    format_comparisons,
    format_idle,
    format_points,
)
from chatservice.bench.results import Comparison
from chatservice.bench.services import RedisProbe, redis_socket_address


def parse_points(text: str) -> list[Point]:
    """
    C{RxS[@RATE],...}: receivers and senders, and for a paced point the
    lines a second the senders say in all, so that one run can hold the
    points at full speed and a paced one.
    """
    points = []
    for item in text.split(","):
        match = re.fullmatch(
            r"\s*(\d+)\s*x\s*(\d+)\s*(?:@\s*(\d+(?:\.\d*)?)\s*)?", item
        )
        if not match or (match.group(3) is not None and not float(match.group(3))):
            raise argparse.ArgumentTypeError(
                f"{item!r} is not RECEIVERSxSENDERS or RECEIVERSxSENDERS@RATE "
                "(e.g. 100x5, or 100x1@1000 for 1,000 lines a second in all)"
            )
        rate = None if match.group(3) is None else float(match.group(3))
        points.append(Point(int(match.group(1)), int(match.group(2)), rate))
    return points


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host or HOST, int(port)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chat-bench",
        description=(
            "Fan-out benchmark for the chat server: R receivers and S senders "
            "in one room; every line a sender says reaches every other "
            "connection. Starts `twistd -n chat` (flood control and the "
            "per-address cap off) unless told otherwise, and reports "
            "deliveries per second, latency, lost and corrupt lines, and the "
            "server's CPU and memory."
        ),
    )
    p.add_argument(
        "--receivers",
        type=_positive_int,
        default=100,
        help="connections that only listen (default: 100)",
    )
    p.add_argument(
        "--senders",
        type=_positive_int,
        default=5,
        help="connections that say lines, and hear each other (default: 5)",
    )
    p.add_argument(
        "--points",
        type=parse_points,
        help="several RECEIVERSxSENDERS points, e.g. 1000x10,100x5,10x1, each "
        "against a fresh server (instead of --receivers and --senders); "
        "RECEIVERSxSENDERS@RATE paces that point's senders at RATE lines a "
        "second in all, e.g. 100x1@1000",
    )
    p.add_argument(
        "--size",
        type=_positive_int,
        default=64,
        help=f"bytes per line as sent, newline included (default: 64; at least "
        f"{MIN_SIZE})",
    )
    p.add_argument(
        "--window",
        type=_positive_int,
        default=200,
        help="lines per sender not yet delivered to every receiver, at most "
        "(default: 200)",
    )
    p.add_argument(
        "--rate",
        type=_positive_float,
        help="pace the senders at this many lines a second in all, at every "
        "point without a rate of its own (default: as fast as the window "
        "allows)",
    )
    p.add_argument(
        "--seconds",
        type=_positive_float,
        default=10.0,
        help="length of the measured window (default: 10)",
    )
    p.add_argument(
        "--drain",
        type=_positive_float,
        default=5.0,
        help="seconds to wait for the last lines after the senders stop (default: 5)",
    )
    p.add_argument(
        "--processes",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="generator processes (default: one per CPU)",
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        help="hard limit, in seconds, on each run, set-up included (default: "
        "75 + --seconds + --drain + 1 per 50 connections)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--server-command",
        metavar="CMD",
        help="start this instead of our server; it must print its port "
        "(`port=N`, `port N` or `listening on N`), or have {port} in it",
    )
    where.add_argument(
        "--target",
        type=_target,
        action="append",
        metavar="HOST:PORT",
        help="use a running server; repeated, the nodes of a running cluster, "
        "over which the connections are spread",
    )
    p.add_argument(
        "--server-pid",
        type=int,
        action="append",
        help="with --target: the server's process, for its CPU and memory; "
        "repeated, one per --target, in the same order",
    )
    p.add_argument(
        "--nodes",
        type=_positive_int,
        metavar="N",
        help="start N nodes of ours as one cluster (with Redis and "
        "PostgreSQL: --redis and --database, or throwaway ones) for every "
        "run, and spread the connections over them",
    )
    p.add_argument(
        "--redis",
        metavar="ADDRESS",
        help="with --nodes: the Redis the nodes share (what twistd chat "
        "--redis takes), instead of a throwaway redis-server; with several "
        "--target: the cluster's Redis, to read its figures (INFO) from",
    )
    p.add_argument(
        "--database",
        metavar="URL",
        help="with --nodes: the postgresql:// database the nodes share, "
        "instead of a throwaway PostgreSQL cluster with a fresh database "
        "for every run",
    )
    p.add_argument(
        "--node-args",
        metavar="ARGS",
        type=shlex.split,
        default=[],
        help="with --nodes: more arguments for every node's twistd chat, "
        "e.g. '--heartbeat 1'",
    )
    p.add_argument(
        "--compare-single",
        action="store_true",
        help="with --nodes: run the cluster and one node of ours alone "
        "(no Redis, SQLite, as by default) alternately at every point, "
        "--rounds times, and compare them",
    )
    p.add_argument(
        "--share",
        action="store_true",
        help="with --compare-single: also run one node alone at a node's "
        "share of every point (its receivers, every sender), in turn with "
        "the others, and compare each node with it too",
    )
    p.add_argument(
        "--apart",
        action="store_true",
        help="with --nodes or several --target: every sender on the first "
        "node and the receivers on the others, instead of both spread over "
        "all: the others then only receive, every line through the "
        "backplane",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="run ours and the minimal peer alternately at every point",
    )
    p.add_argument(
        "--history",
        action="store_true",
        help="instead of --compare: run ours with history on (a database "
        "file, the default) and with --no-history alternately at every point, "
        "to show what history costs",
    )
    p.add_argument(
        "--peer",
        help="the peer for --compare, a Python script run as `python PEER "
        "{port}` (default: the minimal peer installed with chat-bench, "
        f"{MINIMAL_PEER.name} in chatservice/bench/peers/)",
    )
    p.add_argument(
        "--rounds",
        type=_positive_int,
        default=3,
        help="with --compare: runs of each server at each point, alternating "
        "(default: 3)",
    )
    p.add_argument(
        "--idle",
        type=_positive_int,
        metavar="N",
        help="instead: open N idle connections and report memory per connection",
    )
    p.add_argument(
        "--checksum",
        action="store_true",
        help="also check every byte received (a byte sum and a count of the "
        "end-of-payload marker over the whole stream), at the price of two "
        "more passes over it in the generator; without it, a line garbled "
        "without changing its length is caught only if it is the sampled one",
    )
    p.add_argument(
        "--slow",
        type=int,
        default=0,
        metavar="N",
        help="also connect N slow readers that never read (small receive "
        "buffers): the others must still get every line",
    )
    p.add_argument(
        "--latency",
        choices=["kernel", "app"],
        default="kernel",
        help="when a line counts as received: when the kernel put it in the "
        "receiving socket (SO_TIMESTAMPNS; the default, so that the time the "
        "generator takes to get round to reading it is not blamed on the "
        "server), or when the generator read it",
    )
    p.add_argument(
        "--protocol",
        choices=["line", "irc", "ws"],
        default="line",
        help="how the connections speak: the chat's line protocol (the "
        "default), IRC (register, join #bench, PRIVMSG), or the web front "
        "end's JSON over a WebSocket (upgrade /ws, join bench, say); ours "
        "then also listens for IRC or the web and is measured there",
    )
    p.add_argument(
        "--irc-send",
        action="append",
        default=[],
        metavar="LINE",
        help="with --protocol irc: a line each sender says after 001 and "
        "before its JOIN ({nick} is its nickname); repeatable, e.g. "
        "--irc-send 'OPER bench bench' --irc-send 'MODE {nick} +F' to lift "
        "ngircd's throttling",
    )
    p.add_argument(
        "--server",
        action="append",
        default=[],
        type=_named_server,
        metavar="NAME=CMD",
        dest="servers",
        help="run this server too (a command as for --server-command), "
        "alternately with ours (or --server-command's) at every point, "
        "--rounds times; repeatable",
    )
    p.add_argument(
        "--also-line",
        action="store_true",
        help="with --protocol irc or ws: also run ours over the line "
        "protocol in the same alternation (with any --server), to compare "
        "its fan-out",
    )
    p.add_argument(
        "--bans",
        type=_positive_int,
        metavar="N",
        help="run ours twice in the same alternation, each with a moderator "
        "in the lobby: one with no lists, one that sets N bans (and "
        "--mutes) matching nobody first: what moderation costs fan-out",
    )
    p.add_argument(
        "--mutes",
        type=int,
        default=0,
        metavar="N",
        help="with --bans: also set N mutes",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _named_server(text: str) -> tuple[str, list[str]]:
    name, sep, command = text.partition("=")
    if not sep or not name.strip() or not command.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=COMMAND")
    return name.strip(), shlex.split(command)


@contextlib.contextmanager
def _server(
    args: argparse.Namespace,
    command: list[str] | None,
    label: str,
    pattern: re.Pattern[bytes] = PORT_PATTERN,
) -> Iterator[Server]:
    if args.target is not None:
        [(host, port)] = args.target
        [pid] = args.server_pid or [None]
        yield Server(label, host, port, pid)
        return
    with launched(command or ours_command(), label, pattern=pattern) as server:
        yield server


def compare(
    points: list[Point],
    servers: tuple[tuple[list[str], str], tuple[list[str], str]],
    rounds: int,
    options: Options,
    progress: Progress,
    pattern: re.Pattern[bytes] = PORT_PATTERN,
) -> list[Comparison]:
    """
    Run two servers, each a fresh one for every run, alternately at every
    point, C{rounds} times each: so that whatever else the machine is doing
    weighs on both alike.
    """
    (command, label), (other, other_label) = servers
    comparisons = []
    for receivers, senders, rate in points:
        comparison = Comparison(receivers, senders, rate)
        paced = dataclasses.replace(options, rate=rate)
        for _ in range(rounds):
            for runs, cmd, name in (
                (comparison.ours, command, label),
                (comparison.peer, other, other_label),
            ):
                with launched(cmd, name, pattern=pattern) as server:
                    runs.append(run_point(server, receivers, senders, paced, progress))
        comparisons.append(comparison)
    return comparisons


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    raise_open_files_limit()
    options = Options(
        size=args.size,
        window=args.window,
        rate=args.rate,
        seconds=args.seconds,
        drain=args.drain,
        processes=args.processes,
        timeout=args.timeout,
        checksum=args.checksum,
        kernel_time=args.latency == "kernel",
        slow=args.slow,
        protocol=args.protocol,
        irc_send=tuple(args.irc_send),
        apart=args.apart,
    )
    progress = Progress(sys.stderr.isatty() and not args.json)
    points = [
        point if point.rate is not None else point._replace(rate=args.rate)
        for point in args.points or [Point(args.receivers, args.senders)]
    ]
    pattern = PORT_PATTERN
    if args.server_command:
        command = shlex.split(args.server_command)
        label = label_for(command)
    else:
        command, label = ours_command(args.protocol), "ours"
        pattern = port_pattern(args.protocol)
    if args.target is not None:
        label = "target"
    output: dict[str, Any]
    try:
        _check_cluster_options(args)
        if args.protocol != "line" and args.idle is not None:
            raise BenchError("--idle speaks the line protocol only")
        if args.protocol == "ws" and args.checksum:
            raise BenchError(
                "--checksum needs deliveries of fixed bytes; a WebSocket "
                "delivery's time varies"
            )
        if args.also_line and args.protocol == "line":
            raise BenchError("--also-line compares --protocol irc or ws with line")
        if args.nodes is not None or len(args.target or ()) > 1:
            output, text, ok = _clustered(args, points, options, progress)
        elif args.bans is not None:
            if args.protocol != "line" or args.target is not None:
                raise BenchError("--bans starts ours, over the line protocol")
            if args.servers or args.also_line or args.compare or args.history:
                raise BenchError("--bans is a lineup of its own")
            with_lists = f"bans {args.bans}" + (
                f" mutes {args.mutes}" if args.mutes else ""
            )
            contenders = [
                Contender("no lists", command, "line", moderator=True),
                Contender(
                    with_lists,
                    command,
                    "line",
                    moderator=True,
                    bans=args.bans,
                    mutes=args.mutes,
                ),
            ]
            lineups = run_lineup(points, contenders, args.rounds, options, progress)
            output = {"mode": "lineup", "points": [x.summary() for x in lineups]}
            text = format_lineups(lineups)
            ok = all(x.ok for x in lineups)
        elif args.servers or args.also_line:
            if args.target is not None or args.compare or args.history:
                raise BenchError(
                    "--server and --also-line start every server; they take "
                    "no --target, --compare or --history"
                )
            contenders = [Contender(label, command, args.protocol, pattern)]
            if args.also_line:
                contenders.append(Contender("ours-line", ours_command(), "line"))
            labels = {label, *(c.label for c in contenders)}
            for name, other in args.servers:
                if name in labels:
                    raise BenchError(f"two servers are named {name!r}")
                labels.add(name)
                contenders.append(Contender(name, other, args.protocol))
            lineups = run_lineup(points, contenders, args.rounds, options, progress)
            output = {"mode": "lineup", "points": [x.summary() for x in lineups]}
            text = format_lineups(lineups)
            ok = all(x.ok for x in lineups)
        elif args.idle is not None:
            with _server(args, command, label, pattern) as server:
                idle = run_idle(server, args.idle, options, progress)
            output = {"mode": "idle", "result": dump(idle)}
            text = format_idle(idle)
            ok = idle.ok
        elif args.compare or args.history:
            if args.target is not None:
                raise BenchError("--compare starts both servers; it takes no --target")
            if args.compare and args.protocol != "line":
                raise BenchError("the peer of --compare speaks the line protocol only")
            if args.history:
                other, other_label = [*command, NO_HISTORY], "no-history"
                names = ("history", "no-history")
            else:
                peer = Path(args.peer).resolve() if args.peer else MINIMAL_PEER
                if not peer.is_file():
                    raise BenchError(f"no peer at {peer} (see --peer)")
                other, other_label = peer_command(peer), peer.stem
                names = ("ours", "minimal")
            comparisons = compare(
                points,
                ((command, label), (other, other_label)),
                args.rounds,
                options,
                progress,
                pattern,
            )
            output = {
                "mode": "compare",
                "points": [dump(c) for c in comparisons],
            }
            text = format_comparisons(comparisons, names)
            ok = all(c.ok for c in comparisons)
        else:
            results = []
            for receivers, senders, rate in points:
                paced = dataclasses.replace(options, rate=rate)
                with _server(args, command, label, pattern) as server:
                    results.append(
                        run_point(server, receivers, senders, paced, progress)
                    )
            output = {"mode": "points", "runs": [dump(r) for r in results]}
            text = format_points(results)
            ok = all(r.ok for r in results)
    except BenchError as e:
        progress.clear()
        print(f"chat-bench: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        progress.clear()
        print("chat-bench: interrupted", file=sys.stderr)
        return 130
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(output) if args.json else text, flush=True)
    return 0 if ok else 1


def _check_cluster_options(args: argparse.Namespace) -> None:
    """Refuse what the modes with several nodes cannot do, with the reason."""
    targets = len(args.target or ())
    pids = len(args.server_pid or ())
    if pids and pids != targets:
        raise BenchError("give one --server-pid per --target, in the same order")
    several = args.nodes is not None or targets > 1
    if args.compare_single and args.nodes is None:
        raise BenchError("--compare-single compares the cluster of --nodes N")
    if args.share and not args.compare_single:
        raise BenchError("--share is for --compare-single")
    nodes = targets if args.nodes is None else args.nodes
    if args.apart and nodes < 2:
        raise BenchError("--apart takes two nodes or more: --nodes N or --target")
    if args.apart and args.share:
        raise BenchError(
            "--apart and --share: a receiving node's share is its receivers "
            "and no sender; compare it with one node alone (--compare-single)"
        )
    if args.node_args and args.nodes is None:
        raise BenchError("--node-args is for --nodes")
    if args.redis is not None and not several:
        raise BenchError("--redis is for --nodes, or for several --target")
    if args.database is not None:
        if args.nodes is None:
            raise BenchError("--database is for --nodes")
        if not args.database.startswith(("postgresql://", "postgres://")):
            raise BenchError(
                "--database must be a postgresql:// URL: the nodes share it"
            )
    if not several:
        return
    if args.nodes is not None and (args.server_command or targets):
        raise BenchError(
            "--nodes starts ours; it takes no --server-command or --target"
        )
    if (
        args.compare
        or args.history
        or args.servers
        or args.also_line
        or args.bans is not None
        or args.idle is not None
    ):
        raise BenchError(
            "--nodes and several --target are a mode of their own: no "
            "--compare, --history, --server, --also-line, --bans or --idle"
        )


def _clustered(
    args: argparse.Namespace,
    points: list[Point],
    options: Options,
    progress: Progress,
) -> tuple[dict[str, Any], str, bool]:
    """Run a mode with several nodes: what to print, and whether all was clean."""
    if args.target is not None:
        pids = args.server_pid or [None] * len(args.target)
        nodes = [
            Server(f"target-{n}", host, port, pid)
            for n, ((host, port), pid) in enumerate(
                zip(args.target, pids, strict=True), 1
            )
        ]
        probe = (
            None if args.redis is None else RedisProbe(redis_socket_address(args.redis))
        )
        cluster = Cluster("target", nodes, probe)

        @contextlib.contextmanager
        def running() -> Iterator[Server | Cluster]:
            yield cluster

        results = run_points(points, running, options, progress)
        return (
            {"mode": "cluster", "runs": [dump(r) for r in results]},
            format_cluster(results),
            all(r.ok for r in results),
        )
    progress.show("starting Redis and PostgreSQL")
    with services(args.redis, args.database) as shared:
        launch = cluster_launcher(
            shared, args.nodes, args.protocol, progress, tuple(args.node_args)
        )
        if args.compare_single:
            found = run_versus(
                points,
                launch,
                single_launcher(args.protocol),
                args.rounds,
                options,
                progress,
                share_of(args.nodes) if args.share else None,
            )
            return (
                {"mode": "versus", "points": [v.summary() for v in found]},
                format_versus(found),
                all(v.ok for v in found),
            )
        results = run_points(points, launch, options, progress)
    return (
        {"mode": "cluster", "runs": [dump(r) for r in results]},
        format_cluster(results),
        all(r.ok for r in results),
    )
