"""
What the coordinator and a worker process tell each other.

A worker is started with a L{WorkerSpec} and two pipes: its control pipe
and the wake pipe that other workers poke (see L{chatservice.bench.shared}).
On the control pipe the coordinator sends tuples whose first item names
them:

  - C{("cal", round)}: senders, say a calibration line stamped C{round};
  - C{("start", t0_ns, t_end_ns)}: count from now; send from C{t0} to
    C{t_end} (on the monotonic clock);
  - C{("finals", {sid: (sent, byte sum)}, drain_deadline_ns)}: what every
    sender sent; report once every line has arrived or at the deadline;
  - C{("status",)} (C{--idle}): say how things stand;
  - C{("exit",)}.

and the worker answers with C{("connected", n)}, C{("calibrated", lowest
round heard by all, connections closed)}, C{("stopped", {sid: (sent, byte
sum)})}, C{("status", open, heard from, bytes, last read ns)},
C{("result", L{WorkerResult})} or C{("error", text)}.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process does in a run."""

    host: str
    port: int
    receivers: int
    sender_ids: tuple[int, ...]
    senders: int
    workers: int
    size: int
    window: int
    rate_per_sender: float | None
    # The server processes whose accepted connections pace connecting: each
    # one's pid and its open descriptors before the first connection (see
    # chatservice.bench.connect); empty when none can be watched.
    watch: tuple[tuple[int, int], ...]
    deadline_ns: int
    checksum: bool = False
    idle: bool = False
    kernel_time: bool = True
    slow: int = 0
    # --protocol irc, and the lines its senders say before joining.
    irc: bool = False
    irc_send: tuple[str, ...] = ()
    # --protocol ws (see chatservice.bench.ws).
    ws: bool = False
    # With several nodes (--nodes, several --target): every node's address,
    # the node of each of this worker's receivers in the order they
    # connect, and the node of every sender by id (see
    # chatservice.bench.spread); empty: every connection goes to host and
    # port.
    targets: tuple[tuple[str, int], ...] = ()
    receiver_nodes: tuple[int, ...] = ()
    sender_nodes: tuple[int, ...] = ()
    # With several nodes: the connections of every worker to each node,
    # opened one node after the other (see chatservice.bench.connect).
    node_totals: tuple[int, ...] = ()

    def address(self, node: int) -> tuple[str, int]:
        """Where a connection to C{node} goes."""
        return self.targets[node] if self.targets else (self.host, self.port)


@dataclass
class WorkerResult:
    """What one worker process counted, summed over its connections."""

    clients: int = 0
    window_lines: int = 0
    window_receiver_lines: int = 0
    lines: int = 0
    expected: int = 0
    lost: int = 0
    duplicates: int = 0
    corrupt: int = 0
    reordered: int = 0
    disconnected: int = 0
    incomplete: int = 0
    noise: int = 0
    delivered_form: str = ""
    max_latency_us: int = 0
    histogram: list[int] = field(default_factory=list)
    cpu_window: float = 0.0
    cpu_window_system: float = 0.0
    window_reads: int = 0
    # With several nodes: lines counted in the window by the connections of
    # each node, and the latencies of the sampled lines that crossed nodes
    # (said on one node, heard on another).
    window_lines_by_node: list[int] = field(default_factory=list)
    cross_histogram: list[int] = field(default_factory=list)
