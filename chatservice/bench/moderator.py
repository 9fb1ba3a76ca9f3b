"""
C{--bans N} and C{--mutes N}: what moderation costs fan-out.

Before a run's receivers and senders connect, a moderator connects over the
line protocol, so is the first in the lobby and its operator, and puts
C{N} bans and C{M} mutes on it: masks of each kind the chat takes
(nicknames, addresses and networks, accounts) that match none of the
run's connections, as a public room's list of past trolls would. It then
stays in the room for the run, reading and dropping what it is sent, so
that the room keeps its lists. Every contender of such a lineup has a
moderator, with lists or without, so that the two differ only in them.

The server must take the moderator's lines without throttling: ours is
started without flood control (L{chatservice.bench.launch.OURS_ARGS}).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from chatservice.bench.errors import BenchError
from chatservice.bench.launch import Server

# What the moderator's last command draws, after every ban and mute is set.
_DONE_NICK = "benchmoderator"
_DONE = f"You are now known as {_DONE_NICK}.".encode()


def masks(count: int, kind: str) -> list[str]:
    """
    C{count} masks that match nobody of a run (its connections are guests
    on 127.0.0.1, logged in as no account), of every kind in turn.
    """
    made = []
    for n in range(count):
        shape = n % 4
        if shape == 0:
            made.append(f"{kind}troll{n}")
        elif shape == 1:
            made.append(f"*!*@198.51.{n // 256 % 256}.{n % 256}")
        elif shape == 2:
            made.append(f"*!*@10.{n // 256 % 256}.{n % 256}.0/24")
        else:
            made.append(f"$a:{kind}spammer{n}")
    return made


def _read_until(sock: socket.socket, wanted: bytes, deadline: float) -> bytes:
    """Everything C{sock} gives until C{wanted} is in it."""
    seen = b""
    while wanted not in seen[-(len(wanted) + 65536) :]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError(f"the moderator did not see {wanted!r} in time")
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        if not data:
            raise BenchError("the server closed the moderator's connection")
        seen += data
    return seen


def _drain(sock: socket.socket) -> None:
    sock.settimeout(None)
    with contextlib.suppress(OSError):
        while sock.recv(1 << 20):
            pass


@contextlib.contextmanager
def moderated(
    server: Server, bans: int, mutes: int, timeout: float = 60.0
) -> Iterator[None]:
    """
    A moderator in the lobby of C{server} for the time of the block, having
    set C{bans} bans and C{mutes} mutes there.
    """
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((server.host, server.port), timeout=10)
    except OSError as e:
        raise BenchError(f"the moderator could not connect: {e}") from None
    try:
        _read_until(sock, b"Type /help", deadline)
        commands = [f"/ban {mask} spam" for mask in masks(bans, "ban")]
        commands += [f"/mute {mask} spam" for mask in masks(mutes, "mute")]
        commands.append(f"/nick {_DONE_NICK}")
        sock.sendall("".join(f"{c}\n" for c in commands).encode())
        said = _read_until(sock, _DONE, deadline)
        refused = [line for line in said.splitlines() if line.startswith(b"!!!")]
        if refused:
            raise BenchError(
                f"the server refused {len(refused)} of the moderator's "
                f"commands, first: {refused[0].decode(errors='replace')}"
            )
        drainer = threading.Thread(target=_drain, args=(sock,), daemon=True)
        drainer.start()
        yield
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
