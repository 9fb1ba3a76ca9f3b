"""
Several nodes of our server as one chat, measured as one server: C{--nodes
N} starts them (and, unless given, the Redis and PostgreSQL they share, see
L{chatservice.bench.services}); several C{--target}s name nodes already
running. A run spreads its connections over the nodes
(L{chatservice.bench.spread}), so that lines cross nodes, and reports each
node's CPU and memory, the latency of the lines that crossed, and what
Redis did per line.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chatservice.bench.errors import BenchError
from chatservice.bench.launch import (
    OURS_ARGS,
    Server,
    launched,
    port_pattern,
    protocol_args,
    twistd_path,
)
from chatservice.bench.services import (
    Postgres,
    RedisProbe,
    redis_socket_address,
    scratch,
    throwaway_postgres,
    throwaway_redis,
)


@dataclass
class Cluster:
    """
    The nodes of one chat, measured together: where each listens, and
    where the figures of the Redis they share (and of a throwaway
    PostgreSQL) are read.
    """

    label: str
    nodes: list[Server]
    redis: RedisProbe | None = None
    postgres: Postgres | None = None

    @property
    def host(self) -> str:
        return self.nodes[0].host

    @property
    def port(self) -> int:
        return self.nodes[0].port

    def check_alive(self) -> None:
        for node in self.nodes:
            node.check_alive()

    def tracebacks(self) -> int:
        return sum(node.tracebacks() for node in self.nodes)


@dataclass
class Services:
    """
    What the nodes of every run of one invocation share: the Redis address
    they are given, and a probe for its figures; the database URL they are
    given, or the throwaway PostgreSQL that makes a fresh database for each
    run. C{own_redis} says Redis is a throwaway one, emptied between runs.
    """

    redis: str
    probe: RedisProbe
    own_redis: bool = False
    database: str | None = None
    postgres: Postgres | None = None
    pids: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def services(redis: str | None, database: str | None) -> Iterator[Services]:
    """
    The Redis and PostgreSQL at C{redis} and C{database} if given; for
    either not given, a throwaway one on a UNIX socket in a directory of
    the invocation's own, stopped and removed afterwards.
    """
    with contextlib.ExitStack() as stack:
        directory: Path | None = None
        if redis is None or database is None:
            directory = stack.enter_context(scratch())
        if redis is None:
            assert directory is not None
            address, probe, pid = stack.enter_context(throwaway_redis(directory))
            found = Services(address, probe, own_redis=True, pids={"redis": pid})
        else:
            found = Services(redis, RedisProbe(redis_socket_address(redis)))
            # Fail now, with the reason, rather than in every node's log.
            found.probe.command("PING")
        if database is None:
            assert directory is not None
            found.postgres = stack.enter_context(throwaway_postgres(directory))
            found.pids["postgres"] = found.postgres.pid
        else:
            found.database = database
        yield found


def node_id(index: int, token: str) -> str:
    """
    Node C{index}'s name in one run: C{b1}, C{b2}, ... and a token of the
    run's, so that nodes of an earlier run in a shared Redis are never
    taken for these.
    """
    return f"b{index}-{token}"


def node_command(
    index: int,
    redis: str,
    database: str,
    protocol: str,
    token: str,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """
    Node C{index} of ours, measured as ours is alone (flood control and the
    per-address cap off, a large SendQ), in the cluster at C{redis} with
    history in C{database}, and C{extra} arguments last.
    """
    args = list(OURS_ARGS)
    args[args.index("--database") + 1] = database
    return [
        str(twistd_path()),
        *args,
        "--node-id",
        node_id(index, token),
        "--redis",
        redis,
        *protocol_args(protocol),
        *extra,
    ]


# What a node logs once it is in the cluster: before that, it may listen
# already, but what its users do reaches nobody else.
JOINED = re.compile(rb"Node \S+ is in the cluster")
JOIN_SECONDS = 30.0


def await_joined(node: Server, timeout: float = JOIN_SECONDS) -> None:
    """Wait until C{node} says it is in the cluster (bounded)."""
    deadline = time.monotonic() + timeout
    while not JOINED.search(node.log_text().encode()):
        node.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(
                f"{node.label} did not join the cluster within {timeout:g} s"
            )
        time.sleep(0.02)


@contextlib.contextmanager
def launched_cluster(
    shared: Services,
    nodes: int,
    label: str,
    protocol: str = "line",
    extra: tuple[str, ...] = (),
) -> Iterator[Cluster]:
    """
    Start C{nodes} nodes of ours (C{extra} added to each one's arguments)
    on C{shared}'s Redis and a database (a
    fresh one for this run if PostgreSQL is a throwaway; a throwaway Redis
    is emptied first, so that every run starts as a single server does,
    from nothing); stop them all afterwards. They start one after the
    other, each once the one before is in the cluster (which it logs; it
    may listen before), so that the first alone makes a fresh database's
    tables, and no connection arrives at a node not yet in the cluster.
    """
    with contextlib.ExitStack() as stack:
        if shared.own_redis:
            shared.probe.flush()
        if shared.postgres is not None:
            database = stack.enter_context(shared.postgres.database())
        else:
            assert shared.database is not None
            database = shared.database
        token = secrets.token_hex(3)
        started = []
        for i in range(1, nodes + 1):
            node = stack.enter_context(
                launched(
                    node_command(i, shared.redis, database, protocol, token, extra),
                    f"{label}-b{i}",
                    pattern=port_pattern(protocol),
                )
            )
            await_joined(node)
            started.append(node)
        yield Cluster(label, started, shared.probe, shared.postgres)
