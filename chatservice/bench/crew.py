"""
The worker processes of one run, as the coordinator sees them: started
with C{spawn} (so that a script using them needs the usual C{if __name__ ==
"__main__":} guard), spoken to through pipes, and ended together.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from chatservice.bench.cluster import Cluster
from chatservice.bench.errors import BenchError
from chatservice.bench.launch import Server
from chatservice.bench.messages import WorkerSpec
from chatservice.bench.progress import Progress
from chatservice.bench.worker import worker_main


def shared_array(length: int) -> Any:
    """An array of C{length} counters that the workers of a run share."""
    return multiprocessing.get_context("spawn").RawArray("q", length)


class Crew:
    """The worker processes of one run and what they have said."""

    def __init__(
        self,
        server: Server | Cluster,
        specs: list[WorkerSpec],
        shared: Any,
        deadline: float,
    ) -> None:
        self.server = server
        self.deadline = deadline
        self.shared = shared
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        self.messages: list[dict[str, Any]] = [{} for _ in specs]
        wakes = [context.Pipe(duplex=False) for _ in specs]
        wakers = [writer for _, writer in wakes]
        for index, spec in enumerate(specs):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=worker_main,
                args=(index, spec, theirs, shared, wakes[index][0], wakers),
                daemon=True,
                name=f"chat-bench-{index}",
            )
            process.start()
            theirs.close()
            self.pipes.append(ours)
            self.processes.append(process)
        for reader, writer in wakes:
            reader.close()
            writer.close()

    def send(self, message: tuple[Any, ...], only: Sequence[int] | None = None) -> None:
        for index, pipe in enumerate(self.pipes):
            if only is None or index in only:
                pipe.send(message)

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BenchError("the run's deadline passed (see --timeout)")
        return left

    def receive(self, timeout: float) -> None:
        """Take in what the workers say within C{timeout} seconds."""
        timeout = max(0.0, min(timeout, self.remaining()))
        for ready in wait(self.pipes, timeout):
            assert isinstance(ready, Connection)
            index = self.pipes.index(ready)
            while ready.poll():
                try:
                    message = ready.recv()
                except EOFError:
                    raise BenchError(f"worker {index} exited unexpectedly") from None
                if message[0] == "error":
                    raise BenchError(message[1])
                self.messages[index][message[0]] = message[1:]
        self.server.check_alive()

    def sleep_until(self, when: float) -> None:
        """Take in what the workers say until C{when} (monotonic)."""
        while True:
            left = when - time.monotonic()
            if left <= 0:
                return
            self.receive(left)

    def all_said(self, kind: str) -> bool:
        return all(kind in m for m in self.messages)

    def await_all(self, kind: str, timeout: float | None = None) -> None:
        limit = time.monotonic() + (timeout if timeout is not None else 1e9)
        while not self.all_said(kind):
            if time.monotonic() > limit:
                raise BenchError(f"the workers did not all report {kind!r} in time")
            self.receive(0.1)

    def total(self, index: int, workers: int) -> int:
        return sum(self.shared[index + w] for w in range(workers))

    def await_connected(
        self, progress: Progress, label: str, started: int, connections: int
    ) -> None:
        """
        Wait until every worker has opened its connections, showing how many
        are open (the workers' counts start at index C{started}).
        """
        while not self.all_said("connected"):
            self.receive(0.25)
            progress.show(
                f"{label}: connecting "
                f"{self.total(started, len(self.pipes))}/{connections}"
            )

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError, ValueError):
                pipe.send(("exit",))
        for process in self.processes:
            process.join(2)
            if process.is_alive():
                process.terminate()
                process.join(2)
            if process.is_alive():
                process.kill()
                process.join(2)
        for pipe in self.pipes:
            pipe.close()
