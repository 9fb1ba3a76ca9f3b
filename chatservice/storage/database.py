"""
The SQLite database: room history and accounts, on one connection used by
one thread of its own.

SQLite serializes writers anyway, so one connection on one thread is all the
concurrency there is to have; it keeps every write in order (an account
saved after a line is on disk after it) and the reactor thread never waits
for a disk. The file is opened, checked and migrated synchronously at
start-up, before anything listens, so that a database that cannot serve
stops the server with a reason instead of failing later.

History is written by group commit: the lines recorded in the last
L{FLUSH_INTERVAL} seconds go in one transaction. A hard kill can lose at
most that much; a normal stop (SIGTERM, SIGINT, the end of C{twistd}) writes
everything first.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorThreads, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from chatservice.core.accounts import Account
from chatservice.core.history import History, Unwritten, count_lines
from chatservice.core.stats import Stats

log = Logger()

T = TypeVar("T")

# Seconds between group commits: the most a hard kill can lose.
FLUSH_INTERVAL = 0.05
# Seconds before a failed write is tried again.
RETRY_INTERVAL = 1.0
# Tries of the last write at shutdown before what is left is given up.
STOP_TRIES = 3
# Seconds between retention prunes.
PRUNE_INTERVAL = 60.0
# Bytes of history kept in memory while the disk refuses them; past this
# what failed to be written is dropped, loudly.
MAX_UNWRITTEN = 256 * 1024 * 1024

SCHEMA_VERSION = 2
# MIGRATIONS[n] takes a database from version n to n + 1. Never edit one
# that has shipped: add the next.
MIGRATIONS: dict[int, list[str]] = {
    0: [
        # History is stored as chunks: the lines one room got within one
        # group commit, as the CRLF-ended wire lines that were broadcast
        # (history.parse says their shapes). One row per line costs SQLite
        # microseconds a line, which at a busy server's hundreds of
        # thousands of lines a second is a whole core; one row per chunk
        # costs a few per commit. The messages view below gives one row per
        # line, for people and tools that query the file.
        """
        CREATE TABLE history (
            id INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            room_key TEXT NOT NULL,
            room TEXT NOT NULL,
            count INTEGER NOT NULL,
            lines BLOB NOT NULL
        )
        """,
        "CREATE INDEX history_by_room ON history (room_key, id)",
        """
        CREATE VIEW messages (chunk, line, time, room, sender, kind, text) AS
        WITH RECURSIVE split(chunk, line, time, room, text, rest) AS (
            SELECT id, 0, time, room, NULL, CAST(lines AS TEXT) FROM history
            UNION ALL
            SELECT chunk, line + 1, time, room,
                   substr(rest, 1, instr(rest, char(13, 10)) - 1),
                   substr(rest, instr(rest, char(13, 10)) + 2)
            FROM split WHERE rest != ''
        ),
        bodies(chunk, line, time, room, body) AS (
            SELECT chunk, line, time, room, substr(text, instr(text, '] ') + 2)
            FROM split WHERE text IS NOT NULL
        ),
        parts(chunk, line, time, room, is_message, body, cut) AS (
            SELECT chunk, line, time, room, substr(body, 1, 1) = '<', body,
                   CASE WHEN substr(body, 1, 1) = '<' THEN instr(body, '> ')
                        ELSE 2 + instr(substr(body, 3), ' ') END
            FROM bodies
        )
        SELECT chunk, line, time, room,
               CASE WHEN is_message THEN substr(body, 2, cut - 2)
                    ELSE substr(body, 3, cut - 3) END,
               CASE WHEN is_message THEN 'message' ELSE 'action' END,
               substr(body, cut + CASE WHEN is_message THEN 2 ELSE 1 END)
        FROM parts
        ORDER BY chunk, line
        """,
    ],
    1: [
        """
        CREATE TABLE accounts (
            nick_key TEXT PRIMARY KEY,
            nick TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            created REAL NOT NULL
        )
        """,
    ],
}

# How much lower than the reactor thread the database thread runs.
BACKGROUND_NICE = 10
# About the most bytes in one chunk, so that splitting one (the messages
# view copies the rest of a chunk per line) stays cheap.
CHUNK_BYTES = 16 * 1024


def split_lines(blob: bytes) -> list[bytes]:
    """
    The CRLF-ended lines of a chunk.
    """
    return [line + b"\r\n" for line in blob.split(b"\r\n")[:-1]]


def _pieces(data: bytearray) -> list[tuple[int, int]]:
    """
    Cut C{data} at line ends into pieces of about L{CHUNK_BYTES}.
    """
    pieces = []
    start = 0
    while start < len(data):
        end = data.find(b"\n", start + CHUNK_BYTES)
        end = len(data) if end == -1 else end + 1
        pieces.append((start, end))
        start = end
    return pieces


def _timed(f: Callable[..., object], *args: object) -> float:
    """
    How long C{f(*args)} took, in seconds.
    """
    started = time.perf_counter()
    f(*args)
    return time.perf_counter() - started


def _background() -> None:
    """
    Let the scheduler put the reactor thread (and, on a shared host, other
    work) before writing history, which can wait: Linux gives each thread
    a nice value of its own.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


class DatabaseError(Exception):
    """
    The database cannot be used; the message says why, in one line.
    """


class Store:
    """
    The queries, run synchronously: at start-up on the main thread, then
    only on the database thread.
    """

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        self.connection = connection
        self.path = path

    def migrate(self) -> int:
        """
        Bring the schema up to L{SCHEMA_VERSION}, one version per
        transaction, and return the version found.
        """
        db = self.connection
        (found,) = db.execute("PRAGMA user_version").fetchone()
        if found > SCHEMA_VERSION:
            raise DatabaseError(
                f"{self.path} has schema version {found}; this server knows "
                f"versions up to {SCHEMA_VERSION}"
            )
        for version in range(found, SCHEMA_VERSION):
            db.execute("BEGIN")
            try:
                for statement in MIGRATIONS[version]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {version + 1}")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            log.info(
                "Migrated {path} to schema version {version}",
                path=self.path,
                version=version + 1,
            )
        return int(found)

    def room_keys(self) -> list[str]:
        return [
            key
            for (key,) in self.connection.execute(
                "SELECT DISTINCT room_key FROM history"
            )
        ]

    def tails(self, keep: int) -> list[tuple[float, str, bytes]]:
        """
        At least the last C{keep} lines of every room, as (time, room key,
        wire line), each room oldest first. Read chunk by chunk from the
        newest, through the room index.
        """
        lines: list[tuple[float, str, bytes]] = []
        for key in self.room_keys():
            chunks: list[tuple[float, bytes]] = []
            have = 0
            for when, count, blob in self.connection.execute(
                "SELECT time, count, lines FROM history WHERE room_key = ?"
                " ORDER BY id DESC",
                (key,),
            ):
                chunks.append((when, blob))
                have += count
                if have >= keep:
                    break
            for when, blob in reversed(chunks):
                lines.extend((when, key, line) for line in split_lines(blob))
        return lines

    def insert(self, taken: dict[str, Unwritten]) -> None:
        """
        Store each room's unwritten lines, in one transaction: a chunk per
        room (and per L{CHUNK_BYTES}), dated by its first line, so that the
        time a line shows is off by at most one flush interval.
        """
        rows = []
        for room_key, unwritten in taken.items():
            data = unwritten.data
            view = memoryview(data)
            for start, end in _pieces(data):
                # Text holds no newline, so one byte marks each line end,
                # and a one-byte count is a fast memchr.
                count = (
                    unwritten.count
                    if end - start == len(data)
                    else data.count(b"\n", start, end)
                )
                rows.append(
                    (unwritten.time, room_key, unwritten.room, count, view[start:end])
                )
        with self._transaction():
            self.connection.executemany(
                "INSERT INTO history (time, room_key, room, count, lines)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def prune(self, max_per_room: int, before: float) -> int:
        """
        Delete chunks older than C{before} (if above 0), and in each room
        the chunks wholly beyond its last C{max_per_room} lines (if above
        0); return how many lines went. Both walk the primary key or the
        room index, never the whole table.
        """
        db = self.connection
        deleted = 0
        with self._transaction():
            if before > 0:
                first_kept = db.execute(
                    "SELECT id FROM history WHERE time >= ? ORDER BY id LIMIT 1",
                    (before,),
                ).fetchone()
                cutoff = first_kept[0] if first_kept else None
                deleted += self._delete("? IS NULL OR id < ?", (cutoff, cutoff))
            if max_per_room > 0:
                for key in self.room_keys():
                    kept = 0
                    oldest_kept = None
                    for chunk_id, count in db.execute(
                        "SELECT id, count FROM history WHERE room_key = ?"
                        " ORDER BY id DESC",
                        (key,),
                    ):
                        if kept >= max_per_room:
                            break
                        kept += count
                        oldest_kept = chunk_id
                    if oldest_kept is not None:
                        deleted += self._delete(
                            "room_key = ? AND id < ?", (key, oldest_kept)
                        )
        return deleted

    def _delete(self, where: str, args: tuple[object, ...]) -> int:
        (count,) = self.connection.execute(
            f"SELECT coalesce(sum(count), 0) FROM history WHERE {where}", args
        ).fetchone()
        self.connection.execute(f"DELETE FROM history WHERE {where}", args)
        return int(count)

    def accounts(self) -> dict[str, Account]:
        """
        Every account, by nickname key.
        """
        return {
            key: Account(nick, password_hash)
            for key, nick, password_hash in self.connection.execute(
                "SELECT nick_key, nick, password_hash FROM accounts"
            )
        }

    def save_account(
        self, nick_key: str, nick: str, password_hash: str, now: float
    ) -> None:
        with self._transaction():
            self.connection.execute(
                "INSERT INTO accounts (nick_key, nick, password_hash, created)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (nick_key) DO UPDATE"
                " SET password_hash = excluded.password_hash",
                (nick_key, nick, password_hash, now),
            )

    def close(self) -> None:
        self.connection.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self.connection)


class _Transaction:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            self.connection.execute("COMMIT")
        else:
            self.connection.execute("ROLLBACK")


def open_store(path: str) -> Store:
    """
    Open (creating if need be), lock and migrate the database at C{path}.
    Raises L{DatabaseError} with a one-line reason if it cannot serve: a bad
    path, no permission, not a SQLite file, a newer schema, or another
    server holding it.
    """
    try:
        connection = sqlite3.connect(
            path,
            # Fail at once if another server has the file.
            timeout=0,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error as e:
        raise DatabaseError(f"cannot open {path}: {e}") from None
    try:
        # One server per file: the lock is taken now and kept until the
        # server stops, so a second server fails here instead of
        # interleaving its writes. WAL keeps each commit cheap; NORMAL
        # syncs at checkpoints, which a power cut can cost the last
        # commits of but an application crash cannot.
        connection.execute("PRAGMA locking_mode = EXCLUSIVE")
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()
        if path != ":memory:" and mode != ("wal",):
            raise DatabaseError(f"cannot use {path}: WAL mode refused ({mode})")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("BEGIN EXCLUSIVE")
        connection.execute("COMMIT")
        store = Store(connection, path)
        store.migrate()
    except sqlite3.Error as e:
        connection.close()
        reason = str(e)
        if "locked" in reason:
            reason += " (is another chat server using it?)"
        raise DatabaseError(f"cannot use {path}: {reason}") from None
    except DatabaseError:
        connection.close()
        raise
    return store


def check(path: str) -> None:
    """
    Open, migrate and close the database at C{path}, so that one that cannot
    serve stops C{twistd} before it forks or listens; raises
    L{DatabaseError}. (An SQLite connection must not cross a C{fork}, and its
    lock would not, so the server opens the file again once it runs.)
    """
    store = open_store(path)
    try:
        store.tails(1)
        store.accounts()
    except sqlite3.Error as e:
        raise DatabaseError(f"cannot read {path}: {e}") from None
    finally:
        store.close()


class Database(Service):
    """
    The database thread: group commits of history, retention, and any other
    query the server runs, all in order.

    Starting opens the file and loads what the server keeps in memory: the
    tail of every room's history, and the accounts.
    """

    store: Store

    def __init__(
        self,
        path: str,
        history: History,
        accounts: dict[str, Account],
        reactor: Any,
        max_per_room: int = 0,
        days: float = 0,
        interval: float = FLUSH_INTERVAL,
        stats: Stats | None = None,
    ) -> None:
        self.path = path
        self.stats = Stats() if stats is None else stats
        self.history = history
        self.accounts = accounts
        self.reactor: IReactorTime = reactor
        self._threads: IReactorThreads = reactor
        self.max_per_room = max_per_room
        self.days = days
        self.interval = interval
        self.pool = ThreadPool(minthreads=1, maxthreads=1, name="chat-database")
        self._flush_call: IDelayedCall | None = None
        self._writing: Deferred[Any] | None = None
        self._pruner: LoopingCall | None = None

    def startService(self) -> None:
        self.store = open_store(self.path)
        if self.history.unwritten is not None:
            self.history.load(self.store.tails(self.history.keep))
        self.accounts.update(self.store.accounts())
        log.info("Using database {path}", path=self.path)
        super().startService()
        self.pool.start()
        self.pool.callInThread(_background)
        self.history.wake = self._wake
        if self.history.unwritten:
            self._wake()
        if self.max_per_room > 0 or self.days > 0:
            self._pruner = LoopingCall(self.prune)
            self._pruner.clock = self.reactor
            self._pruner.start(PRUNE_INTERVAL, now=True)

    def run(self, f: Callable[..., T], *args: object) -> Deferred[T]:
        """
        Run C{f(*args)} on the database thread, after everything already
        asked of it.
        """
        return deferToThreadPool(self._threads, self.pool, f, *args)

    def _wake(self) -> None:
        if self._flush_call is None and self._writing is None:
            self._flush_call = self.reactor.callLater(self.interval, self._flush)

    def _flush(self) -> None:
        self._flush_call = None
        rows = self.history.take()
        if not rows:
            return
        writing = self._writing = self.run(_timed, self.store.insert, rows)

        def written(seconds: float) -> None:
            self.stats.history_writes.observe(seconds)
            self._next(self.interval)

        def failed(failure: Any) -> None:
            log.failure(
                "Writing {count} history lines failed; they will be tried again",
                failure,
                count=count_lines(rows),
            )
            self._put_back(rows)
            self._next(RETRY_INTERVAL)

        writing.addCallbacks(written, failed)

    def _next(self, delay: float) -> None:
        self._writing = None
        if self.history.unwritten and self.running:
            self._flush_call = self.reactor.callLater(delay, self._flush)

    def _put_back(self, taken: dict[str, Unwritten]) -> None:
        self.history.give_back(taken)
        unwritten = self.history.unwritten or {}
        if sum(len(u.data) for u in unwritten.values()) > MAX_UNWRITTEN:
            lost = self.history.take()
            log.error(
                "The database has refused history for too long: {count} "
                "unwritten lines were dropped",
                count=count_lines(lost),
            )

    def prune(self) -> Deferred[None]:
        before = self.reactor.seconds() - self.days * 86400 if self.days > 0 else 0.0
        d = self.run(self.store.prune, self.max_per_room, before)

        def pruned(count: int) -> None:
            if count:
                log.info("Pruned {count} history lines", count=count)

        def failed(failure: Any) -> None:
            log.failure("Pruning history failed", failure)

        return d.addCallbacks(pruned, failed)

    def stopService(self) -> Deferred[None]:
        """
        Write everything recorded so far, then close the file.
        """
        super().stopService()
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        if self._pruner is not None and self._pruner.running:
            self._pruner.stop()
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        if self._writing is not None:
            await self._writing
        await self.write_all()
        await self.run(self.store.close)
        self.pool.stop()

    async def write_all(self) -> None:
        """
        Write every unwritten line now, trying a failing disk a few times
        before giving up with a log line that says how much was lost.
        """
        failures = 0
        while self.history.unwritten and failures < STOP_TRIES:
            rows = self.history.take()
            try:
                await self.run(self.store.insert, rows)
            except Exception:
                failures += 1
                log.failure(
                    "Writing {count} history lines failed (try {attempt} of {tries})",
                    count=count_lines(rows),
                    attempt=failures,
                    tries=STOP_TRIES,
                )
                self.history.give_back(rows)
        lost = self.history.take()
        if lost:
            log.critical(
                "{count} history lines could not be written and are lost",
                count=count_lines(lost),
            )
