"""
What a cluster of our nodes needs besides itself: Redis and PostgreSQL.

Either the user gives them (C{--redis}, C{--database}), or C{chat-bench}
starts throwaway ones for the run: a C{redis-server} found on C{PATH} and a
PostgreSQL cluster made with C{initdb} from C{/usr/lib/postgresql/*/bin},
both listening only on UNIX sockets in the run's own directory, and both
stopped by their process id afterwards. As root, PostgreSQL's programs run
as the C{postgres} user (it refuses to run as root).

Whichever Redis it is, L{RedisProbe} reads its figures (C{INFO}) over a
socket of its own, with the standard library: how many commands it ran,
which ones, and its CPU time, before and after the measured window.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chatservice.bench.errors import BenchError
from chatservice.bench.launch import spawn_logged
from chatservice.bench.proc import proc_cpu_times, proc_tree

# How long a service may take to start or stop, at most.
START_SECONDS = 30.0
STOP_SECONDS = 10.0
# The throwaway PostgreSQL's superuser and port (on its own socket only).
PG_USER = "chat"
PG_PORT = 5432


# Redis


def redis_socket_address(address: str) -> str | tuple[str, int]:
    """
    Where to reach the Redis that C{--redis} names, for the probe: a UNIX
    socket's path, or a host and port. Takes what the nodes take: a
    Twisted client endpoint string (C{unix:path=P}, C{unix:P},
    C{tcp:host=H:port=N}, C{tcp:H:N}) or a C{redis://H:N} or
    C{unix:///P} URL; raises L{BenchError} for anything else.
    """
    text = address.strip()
    if text.startswith("unix://"):
        return text.removeprefix("unix://")
    match = re.fullmatch(r"redis://(?:\[([^\]]+)\]|([^:/]*))(?::(\d+))?/?", text)
    if match:
        host = match.group(1) or match.group(2) or "127.0.0.1"
        return host, int(match.group(3) or 6379)
    kind, _, rest = text.partition(":")
    fields = _endpoint_fields(rest)
    named = dict(f.split("=", 1) for f in fields if "=" in f)
    plain = [f for f in fields if "=" not in f]
    if kind == "unix":
        path = named.get("path") or (plain[0] if plain else "")
        if path:
            return path
    elif kind == "tcp":
        host = named.get("host") or (plain[0] if plain else "")
        port = named.get("port") or (plain[1] if len(plain) > 1 else "")
        if host and port.isdigit():
            return host, int(port)
    raise BenchError(
        f"cannot read Redis's figures at {address!r}: give --redis as "
        "unix:path=PATH, tcp:host=HOST:port=PORT or redis://HOST:PORT"
    )


def _endpoint_fields(text: str) -> list[str]:
    """An endpoint string's fields: split on C{:}, C{\\} escaping one."""
    fields = [""]
    chars = iter(text)
    for char in chars:
        if char == "\\":
            fields[-1] += next(chars, "")
        elif char == ":":
            fields.append("")
        else:
            fields[-1] += char
    return fields


class RedisProbe:
    """
    A Redis to read figures from (and, when it is a throwaway one, to
    empty between runs), one short connection per question.
    """

    def __init__(self, where: str | tuple[str, int], timeout: float = 5.0) -> None:
        self.where = where
        self.timeout = timeout

    def command(self, *words: str) -> bytes:
        """Send one command; return its reply (a status or a bulk string)."""
        family = socket.AF_UNIX if isinstance(self.where, str) else socket.AF_INET
        if not isinstance(self.where, str) and ":" in self.where[0]:
            family = socket.AF_INET6
        request = f"*{len(words)}\r\n" + "".join(
            f"${len(w.encode())}\r\n{w}\r\n" for w in words
        )
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.where)
                sock.sendall(request.encode())
                return _reply(sock)
        except OSError as e:
            raise BenchError(f"Redis at {self.where}: {e}") from None

    def info(self) -> dict[str, str]:
        """Every figure of C{INFO all}, by name."""
        text = self.command("INFO", "all").decode("utf-8", "replace")
        figures = {}
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and not line.startswith("#"):
                figures[name] = value
        return figures

    def flush(self) -> None:
        """Empty it: only for a throwaway Redis, between runs."""
        self.command("FLUSHALL")


def _reply(sock: socket.socket) -> bytes:
    """One RESP reply: C{+status}, C{-error} or C{$length} bulk string."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("Redis closed the connection")
        data += chunk
    head, _, rest = data.partition(b"\r\n")
    if head[:1] == b"+":
        return head[1:]
    if head[:1] == b"$":
        size = int(head[1:])
        while len(rest) < size + 2:
            chunk = sock.recv(max(65536, size + 2 - len(rest)))
            if not chunk:
                raise OSError("Redis closed the connection")
            rest += chunk
        return rest[:size]
    raise OSError(f"Redis answered {head.decode('utf-8', 'replace')}")


@dataclass(frozen=True)
class RedisFigures:
    """What Redis did between two readings of C{INFO}."""

    commands: int
    # Calls of each command, by name (lower case, as C{commandstats} has it).
    calls: dict[str, int]
    cpu_seconds: float


def redis_figures(before: dict[str, str], after: dict[str, str]) -> RedisFigures:
    """
    What Redis did between C{before} and C{after} (two L{RedisProbe.info}
    answers): commands processed (a script's own calls, C{redis.call}, are
    counted too, as Redis counts them), calls per command, CPU seconds.
    """

    def calls(info: dict[str, str]) -> dict[str, int]:
        found = {}
        for name, value in info.items():
            if name.startswith("cmdstat_"):
                fields = dict(f.split("=", 1) for f in value.split(",") if "=" in f)
                found[name.removeprefix("cmdstat_")] = int(fields.get("calls", "0"))
        return found

    def cpu(info: dict[str, str]) -> float:
        return float(info.get("used_cpu_user", 0)) + float(info.get("used_cpu_sys", 0))

    first, last = calls(before), calls(after)
    return RedisFigures(
        commands=int(after.get("total_commands_processed", 0))
        - int(before.get("total_commands_processed", 0)),
        calls={
            name: n - first.get(name, 0)
            for name, n in sorted(last.items())
            if n - first.get(name, 0)
        },
        cpu_seconds=cpu(after) - cpu(before),
    )


def redis_server_argv(program: str, socket_path: Path, directory: Path) -> list[str]:
    """
    How to run C{redis-server} (C{program}) throwaway: on the UNIX socket
    C{socket_path} only (no TCP port), in the foreground, keeping nothing
    (no snapshot, no append-only file) in C{directory}.
    """
    return [
        program,
        "--port",
        "0",
        "--unixsocket",
        str(socket_path),
        "--unixsocketperm",
        "700",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
        "--daemonize",
        "no",
    ]


@contextlib.contextmanager
def throwaway_redis(directory: Path) -> Iterator[tuple[str, RedisProbe, int]]:
    """
    Start C{redis-server} on a UNIX socket in C{directory}, no TCP port, no
    persistence; yield the address the nodes take, a probe and its pid;
    stop it afterwards.
    """
    program = shutil.which("redis-server")
    if program is None:
        raise BenchError(
            "--nodes needs Redis: no redis-server on PATH (install it, or "
            "give --redis ADDRESS)"
        )
    path = directory / "redis.sock"
    process = spawn_logged(
        redis_server_argv(program, path, directory), directory / "redis.log"
    )
    probe = RedisProbe(str(path))
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                raise BenchError(
                    f"redis-server exited with status {process.returncode}: "
                    + _tail(directory / "redis.log")
                )
            try:
                if probe.command("PING") == b"PONG":
                    break
            except BenchError:
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"redis-server did not answer within {START_SECONDS:g} s"
                    ) from None
            time.sleep(0.02)
        yield f"unix:path={path}", probe, process.pid
    finally:
        _stop(process)


# PostgreSQL


def find_postgres_bindir() -> Path | None:
    """
    The newest PostgreSQL's server programs under C{/usr/lib/postgresql}
    (Debian keeps them off C{PATH}), else the directory of C{initdb} on
    C{PATH}; None if there is neither.
    """
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parts],
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return None if initdb is None else Path(initdb).resolve().parent


def postgres_bindir() -> Path:
    """L{find_postgres_bindir}, or a L{BenchError} saying what to install."""
    bindir = find_postgres_bindir()
    if bindir is None:
        raise BenchError(
            "--nodes needs PostgreSQL: no initdb in /usr/lib/postgresql/*/bin "
            "or on PATH (install it, or give --database postgresql://...)"
        )
    return bindir


def _postgres_user() -> pwd.struct_passwd:
    """The user PostgreSQL's programs run as when we are root."""
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise BenchError(
            "PostgreSQL will not run as root, and there is no postgres user "
            "to run it as"
        ) from None


def _as_postgres(argv: list[str]) -> list[str]:
    """As root, run C{argv} as the C{postgres} user: PostgreSQL refuses root."""
    if os.geteuid() != 0:
        return argv
    _postgres_user()
    return ["runuser", "-u", "postgres", "--", *argv]


def _run(argv: list[str], what: str, timeout: float = START_SECONDS) -> None:
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"{what}: {e}") from None
    if done.returncode:
        output = (done.stdout + done.stderr).decode("utf-8", "replace").strip()
        raise BenchError(f"{what} failed: {output[-2000:]}")


class Postgres:
    """A throwaway PostgreSQL cluster: fresh databases in it, one per run."""

    def __init__(self, bindir: Path, sockets: Path, pid: int) -> None:
        self.bindir = bindir
        self.sockets = sockets
        self.pid = pid
        self.made = 0

    def url(self, database: str) -> str:
        return f"postgresql://{PG_USER}@/{database}?host={self.sockets}&port={PG_PORT}"

    def _client(self, program: str, *args: str) -> list[str]:
        return [
            str(self.bindir / program),
            "-h",
            str(self.sockets),
            "-p",
            str(PG_PORT),
            "-U",
            PG_USER,
            *args,
        ]

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A fresh, empty database for one run, dropped after it: its URL."""
        self.made += 1
        name = f"bench{self.made}"
        _run(self._client("createdb", name), f"createdb {name}")
        try:
            yield self.url(name)
        finally:
            with contextlib.suppress(BenchError):
                _run(
                    self._client("dropdb", "--if-exists", "--force", name),
                    f"dropdb {name}",
                    STOP_SECONDS,
                )

    def cpu_seconds(self) -> float | None:
        """CPU seconds of the server and its backends (those alive now)."""
        total = 0.0
        for pid in proc_tree(self.pid):
            times = proc_cpu_times(pid)
            if times is not None:
                total += sum(times)
        return total


@contextlib.contextmanager
def throwaway_postgres(directory: Path) -> Iterator[Postgres]:
    """
    Make a PostgreSQL cluster in C{directory}, its superuser L{PG_USER}
    trusted on its UNIX socket only, without fsync (its data lives as long
    as the run); start it; stop it afterwards (C{pg_ctl stop}, else
    SIGKILL to its pid).
    """
    bindir = postgres_bindir()
    base = directory / "pg"
    data = base / "data"
    base.mkdir(mode=0o755)
    # The postgres user must reach its directory, inside the run's.
    directory.chmod(0o755)
    if os.geteuid() == 0:
        entry = _postgres_user()
        os.chown(base, entry.pw_uid, entry.pw_gid)
    _run(
        _as_postgres(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                PG_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]
        ),
        "initdb",
        START_SECONDS * 2,
    )
    settings = (
        f"-k {base} -p {PG_PORT} -c listen_addresses='' -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    pid = None
    try:
        _run(
            _as_postgres(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(base / "log"),
                    "-w",
                    "-t",
                    f"{START_SECONDS:.0f}",
                    "-s",
                    "-o",
                    settings,
                    "start",
                ]
            ),
            "pg_ctl start",
            START_SECONDS + 5,
        )
        pid = int((data / "postmaster.pid").read_text().split()[0])
        yield Postgres(bindir, base, pid)
    finally:
        if pid is not None or (data / "postmaster.pid").exists():
            _stop_postgres(bindir, data, pid)


def _stop_postgres(bindir: Path, data: Path, pid: int | None) -> None:
    try:
        _run(
            _as_postgres(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    f"{STOP_SECONDS:.0f}",
                    "-s",
                    "stop",
                ]
            ),
            "pg_ctl stop",
            STOP_SECONDS + 5,
        )
    except BenchError:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A directory for the services of one invocation, removed after."""
    directory = Path(tempfile.mkdtemp(prefix="chat-bench-services-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to C{process}, then SIGKILL if it is still there."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_SECONDS)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""
