"""
Opening a worker's connections no faster than the server accepts them.

A full accept queue drops SYNs, and each dropped connect costs a second, so
the workers together keep at most L{PACE} connections opened but not yet
accepted; the server's open descriptors in C{/proc} say how many it has
accepted (with several nodes, all of theirs together).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator

from chatservice.bench import irc, ws
from chatservice.bench.errors import BenchError
from chatservice.bench.latency import SO_TIMESTAMPNS
from chatservice.bench.messages import WorkerSpec
from chatservice.bench.proc import proc_fd_count
from chatservice.bench.shared import Window

# Connections opened but not yet accepted by the server, at most (the
# listen backlog of a Twisted port is 50).
PACE = 32


def connections(
    spec: WorkerSpec, window: Window, poll: Callable[[float], None]
) -> Iterator[tuple[int, int, socket.socket]]:
    """
    Open this worker's connections, receivers first and senders last (their
    calibration and lines come after everyone), each as its sender id (-1
    for a receiver), the node it went to (see L{WorkerSpec.address}) and
    its non-blocking socket. While it waits for the servers, C{poll} serves
    what the worker has open.

    With several nodes, one node at a time (see L{WorkerSpec.node_totals}):
    a node's connections once every worker has opened those of the nodes
    before it, and they have been accepted.
    """
    total = spec.receivers + len(spec.sender_ids)
    roles = [-1] * spec.receivers + list(spec.sender_ids)
    nodes = list(spec.receiver_nodes or [0] * spec.receivers) + [
        spec.sender_nodes[sid] if spec.sender_nodes else 0 for sid in spec.sender_ids
    ]
    # Node by node; in each, receivers before senders.
    order = sorted(zip(roles, nodes, strict=True), key=lambda role: role[1])
    accepted = 0
    stalled_since = time.monotonic()
    node_now = 0
    for n, (sid, node) in enumerate(order):
        if node != node_now:
            node_now = node
            _await_nodes_before(spec, window, poll, node)
            stalled_since = time.monotonic()
        while spec.watch and window.started() - accepted >= PACE:
            now_accepted = _accepted(spec.watch)
            if now_accepted is None:
                break
            if now_accepted > accepted:
                accepted = now_accepted
                stalled_since = time.monotonic()
                continue
            if time.monotonic() - stalled_since > 2.0:
                # Cannot see it accept (a wrapper?); go on anyway.
                stalled_since = time.monotonic()
                break
            poll(0.002)
        if time.monotonic_ns() > spec.deadline_ns:
            raise BenchError(f"deadline passed after {n} of {total} connections")
        host, port = spec.address(node)
        try:
            sock = socket.create_connection((host, port), timeout=10)
        except OSError as e:
            raise BenchError(
                f"connection {n + 1} of {total} to {host}:{port} failed: {e}"
            ) from None
        sock.setblocking(False)
        if sid >= 0:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if spec.kernel_time:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        yield sid, node, sock


def _await_nodes_before(
    spec: WorkerSpec, window: Window, poll: Callable[[float], None], node: int
) -> None:
    """
    Wait until every worker has opened the connections of the nodes before
    C{node}, and (when the nodes' processes can be watched) those nodes
    have accepted them: each node names its newcomers from the same guest
    numbers, skipping the names it knows the cluster has, so newcomers
    arriving at two nodes at once take one name on both, and all but one
    are renamed, again and again (ours gives up on a newcomer after ten
    tries).
    """
    before = sum(spec.node_totals[:node])
    stalled_since = time.monotonic()
    seen = -1
    while True:
        opened = window.started()
        accepted = _accepted(spec.watch) if spec.watch else None
        if opened >= before and (accepted is None or accepted >= before):
            return
        if time.monotonic_ns() > spec.deadline_ns:
            raise BenchError(
                f"deadline passed waiting for the connections of node {node}'s "
                f"predecessors ({opened} of {before} opened, {accepted} accepted)"
            )
        if opened >= before and accepted is not None:
            if accepted != seen:
                seen = accepted
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > 2.0:
                # Cannot see them accept; go on anyway.
                return
        poll(0.002)


def _accepted(watch: tuple[tuple[int, int], ...]) -> int | None:
    """
    Connections the watched servers have accepted since the run began, as
    their open descriptors show; None if one cannot be seen.
    """
    accepted = 0
    for pid, before in watch:
        fds = proc_fd_count(pid)
        if fds is None:
            return None
        accepted += fds - before
    return accepted


def slow_readers(spec: WorkerSpec) -> list[socket.socket]:
    """
    Connect the C{--slow} readers: in the room like any receiver, with a
    small receive buffer, and never read. They are not counted; they are
    there so that the others are measured with them present. With
    C{--protocol irc} they say their registration and C{JOIN} without
    waiting for the replies; with C{--protocol ws}, the upgrade and, once
    it is answered, the join request. With several nodes they go
    round-robin over them.
    """
    readers: list[socket.socket] = []
    for n in range(spec.slow):
        host, port = spec.address(n % max(1, len(spec.targets)))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        try:
            sock.connect((host, port))
            if spec.irc:
                name = b"s%d" % n
                sock.sendall(irc.registration(name) + irc.after_welcome(name, ()))
            elif spec.ws:
                # A client sends no frame before the handshake's answer.
                upgrade, _ = ws.handshake(host, port)
                sock.sendall(upgrade)
                answer = b""
                while b"\r\n\r\n" not in answer:
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise OSError("closed during the WebSocket handshake")
                    answer += chunk
                sock.sendall(ws.join(os.urandom(4)))
        except OSError as e:
            sock.close()
            raise BenchError(f"slow reader {n + 1} failed to connect: {e}") from None
        readers.append(sock)
    return readers
