"""
A worker's spec for the load generator's tests, with the defaults they
share: one worker, one receiver, two senders, 64-byte lines, a window of
ten, no pace, no server process to watch.
"""

from __future__ import annotations

from chatservice.bench.messages import WorkerSpec


def worker_spec(**fields: object) -> WorkerSpec:
    """A L{WorkerSpec} with the tests' defaults, and C{fields} over them."""
    given: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "receivers": 1,
        "sender_ids": (),
        "senders": 2,
        "workers": 1,
        "size": 64,
        "window": 10,
        "rate_per_sender": None,
        "watch": (),
        "deadline_ns": 0,
        "kernel_time": False,
    }
    given.update(fields)
    return WorkerSpec(**given)  # type: ignore[arg-type]
