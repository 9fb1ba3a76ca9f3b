"""
Processes as the kernel shows them: the server's memory, CPU and open
descriptors in C{/proc}, the Python process behind a wrapper command, and
this process's own CPU time and open-files limit.

Linux only, like the rest of C{chat-bench} (epoll, C{SO_TIMESTAMPNS}).
"""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path


def raise_open_files_limit() -> int:
    """
    Raise this process's soft limit on open files as far as the hard limit
    allows (to 2**20 if the hard limit is infinite, which the kernel would
    refuse as a soft limit), and return the soft limit now in force: every
    connection of a run is a descriptor, and the usual soft limit (1024) is
    below the larger points. A limit that cannot be raised is left as it is;
    the connections beyond it then fail with a message that says so.

    The server does the same for itself when it starts
    (C{chatservice.server.service.raise_open_files_limit}, which also logs); the
    benchmark keeps its own because it treats the server as a black box and
    imports none of it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_times() -> tuple[float, float]:
    """User and system CPU seconds of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def proc_status(pid: int, *keys: str) -> dict[str, int] | None:
    """
    The figures C{keys} (such as C{VmRSS} and C{VmHWM}, in KiB) of C{pid},
    from one read of C{/proc/PID/status}; those it does not show are left
    out. None if there is no such process.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    figures: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in keys:
            figures[key] = int(rest.split()[0])
    return figures


def proc_status_kib(pid: int, key: str) -> int | None:
    """One figure of L{proc_status}; None if it is not known."""
    return (proc_status(pid, key) or {}).get(key)


def proc_cpu_times(pid: int) -> tuple[float, float] | None:
    """User and system CPU seconds of C{pid}."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def proc_fd_count(pid: int) -> int | None:
    """
    How many descriptors C{pid} has open: a server's count goes up by one
    for each connection it accepts. None if it cannot be seen.
    """
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def _is_python(pid: int) -> bool:
    try:
        return "python" in Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


def proc_tree(pid: int) -> list[int]:
    """C{pid} and every process it started, and they started, now alive."""
    found = [pid]
    for parent in found:
        found.extend(_children(parent))
    return found


def measured_pid(pid: int) -> int:
    """
    The process to measure for a command started as C{pid}: itself if it is
    Python; if it is a wrapper (a shell, C{env}, ...), its one Python child
    if it has exactly one.
    """
    if _is_python(pid):
        return pid
    pythons = [c for c in _children(pid) if _is_python(c)]
    return pythons[0] if len(pythons) == 1 else pid
