"""
The database service: room history, topics, accounts, registered rooms,
server bans and the audit log, in SQLite on one connection used by one
thread of its own, or in PostgreSQL (a C{postgresql://} URL) through an
adbapi pool of one connection (L{chatservice.storage.postgres}). The shape
is L{chatservice.storage.schema}'s and the queries are
L{chatservice.storage.store}'s, the same on both; this module runs them in
order, off the reactor thread.

SQLite serializes writers anyway, so one connection on one thread is all the
concurrency there is to have; it keeps every write in order (an account
saved after a line is on disk after it) and the reactor thread never waits
for a disk. PostgreSQL gets the same single lane, for the same order. The
database is opened, checked and migrated synchronously at start-up, and
what the server keeps in memory loaded, before anything listens, so that a
database that cannot serve stops the server with a reason instead of
failing later.

When writes fail (a full disk, PostgreSQL down or restarting), the chat goes
on: history waits in memory, in order, and is tried again after a pause
that doubles with each failure up to L{MAX_RETRY_INTERVAL}; past
L{MAX_UNWRITTEN} bytes the oldest lines are dropped, with a log line that
counts them.

History is written by group commit: the lines recorded in the last
L{FLUSH_INTERVAL} seconds go in one transaction. A hard kill can lose at
most that much; a normal stop (SIGTERM, SIGINT, the end of C{twistd}) writes
everything first.

Registered rooms are written when they change, a turn of the reactor after
the change: all the changes of one turn (a ban that puts out ten members,
a mode line that sets five settings) are one transaction of the room's
last state. One write is in flight at a time, so a failed write put back
never overtakes a newer state of the same room.
"""

from __future__ import annotations

import contextlib
import os
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
from chatservice.core.audit import KEEP, Audit
from chatservice.core.history import History, Place, Stored, Unwritten, count_lines
from chatservice.core.moderation import RoomRecord
from chatservice.core.server_bans import ServerBans
from chatservice.core.stats import Stats
from chatservice.storage.dialect import is_postgresql_url, redacted
from chatservice.storage.schema import DatabaseError
from chatservice.storage.store import Store, open_store, read_everything
from chatservice.storage.store import check as check_sqlite

# The server names these here: the service, what stops it starting, and the
# check it runs before it forks.
__all__ = ["Database", "DatabaseError", "check"]

log = Logger()

T = TypeVar("T")

# Seconds between group commits: the most a hard kill can lose.
FLUSH_INTERVAL = 0.05
# Seconds before a failed write is tried again; doubled after each failure
# in a row, up to MAX_RETRY_INTERVAL.
RETRY_INTERVAL = 1.0
MAX_RETRY_INTERVAL = 30.0
# Tries of the last write at shutdown before what is left is given up.
STOP_TRIES = 3
# Seconds between retention prunes.
PRUNE_INTERVAL = 60.0
# Bytes of history kept in memory while the database refuses them; past
# this the oldest lines are dropped, loudly.
MAX_UNWRITTEN = 256 * 1024 * 1024
# How much lower than the reactor thread the database thread runs.
BACKGROUND_NICE = 10


def _timed(f: Callable[..., object], *args: object) -> float:
    """
    How long C{f(*args)} took, in seconds.
    """
    started = time.perf_counter()
    f(*args)
    return time.perf_counter() - started


def open_database(path: str) -> Store:
    """
    A store on the database C{path} names, a SQLite file or a
    C{postgresql://} URL, opened (locked, for a file) and migrated; raises
    L{DatabaseError} with a one-line reason if it cannot serve.
    """
    if is_postgresql_url(path):
        from chatservice.storage.postgres import open_postgres

        return open_postgres(path)
    return open_store(path)


def check(path: str) -> None:
    """
    Open, migrate, read and close the database C{path} names, so that one
    that cannot serve stops C{twistd} before it forks or listens; raises
    L{DatabaseError}. (Neither an SQLite connection nor a PostgreSQL one
    may cross a C{fork}, so the server opens the database again once it
    runs.)
    """
    if not is_postgresql_url(path):
        check_sqlite(path)
        return
    import psycopg

    store = open_database(path)
    try:
        read_everything(store)
    except psycopg.Error as e:
        from chatservice.storage.postgres import one_line

        raise DatabaseError(f"cannot read {store.path}: {one_line(e)}") from None
    finally:
        store.close()


def _background() -> None:
    """
    Let the scheduler put the reactor thread (and, on a shared host, other
    work) before writing history, which can wait: Linux gives each thread
    a nice value of its own.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


def _backoff(failures: int) -> float:
    """The pause after C{failures} failed writes in a row."""
    return float(min(RETRY_INTERVAL * 2 ** min(failures - 1, 30), MAX_RETRY_INTERVAL))


class Database(Service):
    """
    The database thread (on PostgreSQL, the pool's one connection): group
    commits of history, retention, and any other query the server runs,
    all in order.

    Starting opens the database and loads what the server keeps in memory:
    the tail of every room's history, every room's topic, the accounts,
    (handed to C{load_rooms}) the registered rooms, the server bans and the
    newest of the audit log; the bans and the audit log are then given this
    database to save to. L{save_room} and L{forget_room} are what the chat
    calls when a registered room changes; L{save_account} and L{account}
    what the accounts use.

    @ivar shared: whether the database is PostgreSQL, which other servers
        may share: then accounts registered elsewhere must be looked up.
    @ivar store: the SQLite store, used only on the database thread (there
        is none for PostgreSQL, whose stores are made per query around the
        pool's connection).
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
        load_rooms: Callable[[list[RoomRecord]], object] | None = None,
        server_bans: ServerBans | None = None,
        audit: Audit | None = None,
    ) -> None:
        self.path = path
        self.shared = is_postgresql_url(path)
        # What log lines name: a URL's password stays out of them.
        self.where = redacted(path)
        self.load_rooms = load_rooms
        self.server_bans = server_bans
        self.audit = audit
        self.stats = Stats() if stats is None else stats
        self.history = history
        self.accounts = accounts
        self.reactor: IReactorTime = reactor
        self._threads: IReactorThreads = reactor
        self.max_per_room = max_per_room
        self.days = days
        self.interval = interval
        self.pool = ThreadPool(minthreads=1, maxthreads=1, name="chat-database")
        # PostgreSQL's adbapi pool, made at start.
        self.connections: Any = None
        self._query: Callable[[Callable[[Store], Any]], Deferred[Any]] | None = None
        # History writes that failed in a row: the pause before the next
        # try grows with them.
        self._failures = 0
        self._flush_call: IDelayedCall | None = None
        self._writing: Deferred[Any] | None = None
        self._pruner: LoopingCall | None = None
        # Registered rooms changed and not yet written: folded name to the
        # room's last state, or None if it was unregistered.
        self._rooms: dict[str, RoomRecord | None] = {}
        self._rooms_call: IDelayedCall | None = None
        self._rooms_writing: Deferred[None] | None = None
        self._closed = False

    def startService(self) -> None:
        store = open_database(self.path)
        try:
            self._load(store)
        finally:
            if self.shared:
                store.close()
        if self.server_bans is not None:
            self.server_bans.save = lambda ban: self.write(
                "the server ban", lambda store: store.save_server_ban(ban)
            )
            self.server_bans.delete = lambda mask: self.write(
                "lifting the server ban", lambda store: store.delete_server_ban(mask)
            )
        if self.audit is not None:
            self.audit.save = lambda entry: self.write(
                "the audit entry", lambda store: store.save_audit(entry)
            )
        log.info("Using database {path}", path=self.where)
        super().startService()
        if self.shared:
            from chatservice.storage.postgres import connection_pool, in_pool

            self.connections = connection_pool(self.path, self.reactor)
            self._query = in_pool(self.connections, self.where)
        else:
            self.store = store
            self.pool.start()
            self.pool.callInThread(_background)
            self._query = lambda f: deferToThreadPool(
                self._threads, self.pool, f, self.store
            )
        self.history.wake = self._wake
        if self.history.unwritten is not None:
            self.history.archive = self.older
        if self.history.unwritten:
            self._wake()
        if self.max_per_room > 0 or self.days > 0:
            self._pruner = LoopingCall(self.prune)
            self._pruner.clock = self.reactor
            self._pruner.start(PRUNE_INTERVAL, now=True)

    def _load(self, store: Store) -> None:
        """
        Put what the server keeps in memory there, from C{store}, at start.
        """
        if self.history.unwritten is not None:
            self.history.load(store.tails(self.history.keep))
            self.history.load_topics(store.topics())
        self.accounts.update(store.accounts())
        if self.load_rooms is not None:
            self.load_rooms(store.rooms())
        if self.server_bans is not None:
            self.server_bans.load(store.server_bans())
        if self.audit is not None:
            self.audit.load(store.audit(KEEP))

    def query(self, f: Callable[[Store], T]) -> Deferred[T]:
        """
        Run C{f(store)} off the reactor thread, after everything already
        asked of the database: on the database thread with the SQLite store,
        or on the pool's thread with a store around PostgreSQL's connection,
        in a transaction of its own.
        """
        assert self._query is not None, "the database has not started"
        return self._query(f)

    def run(self, f: Callable[..., T], *args: object) -> Deferred[T]:
        """
        Run C{f(*args)} on the database thread (PostgreSQL's: the pool's),
        after everything already asked of it.
        """
        return self.query(lambda _: f(*args))

    def write(self, what: str, f: Callable[[Store], object]) -> None:
        """
        Run the write C{f(store)} on the database thread, in order, for
        whoever does not wait for it: a failure is logged, naming C{what}.
        """

        def failed(failure: Any) -> None:
            log.failure("Storing {what} failed", failure, what=what)

        self.query(f).addErrback(failed)

    def account(self, nick_key: str) -> Deferred[Account | None]:
        """
        The account of the folded nickname C{nick_key} as the database has
        it now (L{chatservice.core.accounts.Accounts}' C{lookup}).
        """
        return self.query(lambda store: store.account(nick_key))

    def save_account(
        self,
        nick_key: str,
        nick: str,
        password_hash: str,
        now: float,
        new: bool,
    ) -> Deferred[bool]:
        """
        Store a C{new} account, if its name is nobody's (fires whether it
        was stored), or an account's new password hash (fires whether there
        was one): L{chatservice.core.accounts.Accounts}' C{save}.
        """
        if new:
            return self.query(
                lambda store: store.insert_account(nick_key, nick, password_hash, now)
            )
        return self.query(lambda store: store.set_password(nick_key, password_hash))

    def older(
        self, room_key: str, n: int, place: Place | None, skip: int
    ) -> Deferred[Stored | None]:
        """
        Lines of a room older than the history keeps in memory
        (L{Store.page}), read on the database thread. Queued behind every
        write already asked for, so the lines the tail has handed over are
        in the file when it runs.
        """
        return self.query(lambda store: store.page(room_key, n, place, skip))

    def _insert(self, rows: dict[str, Unwritten]) -> Deferred[None]:
        return self.query(lambda store: store.insert(rows))

    def _store_rooms(
        self, changes: dict[str, RoomRecord | None], when: float
    ) -> Deferred[None]:
        return self.query(lambda store: store.write_rooms(changes, when))

    def _wake(self) -> None:
        if self._flush_call is None and self._writing is None:
            self._flush_call = self.reactor.callLater(self.interval, self._flush)

    def _flush(self) -> None:
        self._flush_call = None
        rows = self.history.take()
        if not rows:
            return
        writing = self._writing = self.query(lambda store: _timed(store.insert, rows))

        def written(seconds: float) -> None:
            self.stats.history_writes.observe(seconds)
            if self._failures:
                log.info(
                    "Writing history works again, after {failures} failed tries",
                    failures=self._failures,
                )
            self._failures = 0
            self._next(self.interval)

        def failed(failure: Any) -> None:
            self._failures += 1
            delay = _backoff(self._failures)
            if self._failures == 1:
                log.failure(
                    "Writing {count} history lines failed; they will be tried again",
                    failure,
                    count=count_lines(rows),
                )
            else:
                # The traceback was logged once: a database down for an
                # hour says so in one line a try.
                log.warn(
                    "Writing {count} history lines failed again ({failures} tries:"
                    " {error}); next try in {delay:g} s",
                    count=count_lines(rows),
                    failures=self._failures,
                    error=" ".join(failure.getErrorMessage().split())[:200],
                    delay=delay,
                )
            self._put_back(rows)
            self._next(delay)

        writing.addCallbacks(written, failed)

    def _next(self, delay: float) -> None:
        self._writing = None
        if self.history.unwritten and self.running:
            self._flush_call = self.reactor.callLater(delay, self._flush)

    def _put_back(self, taken: dict[str, Unwritten]) -> None:
        """
        Give the lines of a failed write back to the history, in front of
        those said since; if all that is more than L{MAX_UNWRITTEN} bytes,
        drop the oldest lines (room by room, the room whose waiting lines
        began first) until it fits again, and say how many went.
        """
        self.history.give_back(taken)
        unwritten = self.history.unwritten or {}
        excess = sum(len(u.data) for u in unwritten.values()) - MAX_UNWRITTEN
        if excess <= 0:
            return
        dropped = 0
        for pending in sorted(unwritten.values(), key=lambda u: u.time):
            if excess <= 0:
                break
            data = pending.data
            # Whole lines: up to the first line end at or past the excess.
            end = data.find(b"\n", min(excess, len(data)) - 1) + 1 or len(data)
            lines = data.count(b"\n", 0, end)
            # A new buffer: the failed write may still hold views of this one.
            pending.data = bytearray(data[end:])
            pending.count -= lines
            dropped += lines
            excess -= end
        log.error(
            "The database has refused history for too long: the {count} oldest "
            "unwritten lines were dropped, to keep {limit} bytes at most",
            count=dropped,
            limit=MAX_UNWRITTEN,
        )

    def save_room(self, record: RoomRecord) -> None:
        """
        Store the registered room C{record} (the chat's C{save_room}): soon,
        on the database thread, and only its last state if it changes
        again before then. Never raises; a failure is logged and retried.
        """
        self._room_changed(record.key, record)

    def forget_room(self, key: str) -> None:
        """
        Store no more the room whose folded name is C{key} (the chat's
        C{forget_room}), as L{save_room} stores one.
        """
        self._room_changed(key, None)

    def _room_changed(self, key: str, record: RoomRecord | None) -> None:
        if self._closed:
            log.error(
                "Registered room {key} changed after the database closed;"
                " the change is not stored",
                key=key,
            )
            return
        self._rooms[key] = record
        # While stopping, the stop writes it.
        if self.running:
            self._next_rooms(0)

    def _next_rooms(self, delay: float) -> None:
        if self._rooms and self._rooms_call is None and self._rooms_writing is None:
            self._rooms_call = self.reactor.callLater(delay, self._write_rooms)

    def _write_rooms(self) -> None:
        self._rooms_call = None
        changes, self._rooms = self._rooms, {}
        writing = self._rooms_writing = self._store_rooms(
            changes, self.reactor.seconds()
        )

        def written(_: object) -> None:
            self._rooms_writing = None
            if self.running:
                self._next_rooms(0)

        def failed(failure: Any) -> None:
            log.failure(
                "Storing {count} registered room(s) failed; they will be tried again",
                failure,
                count=len(changes),
            )
            self._put_back_rooms(changes)
            self._rooms_writing = None
            if self.running:
                self._next_rooms(RETRY_INTERVAL)

        writing.addCallbacks(written, failed)

    def _put_back_rooms(self, changes: dict[str, RoomRecord | None]) -> None:
        """Put back what failed to be written, unless changed since."""
        self._rooms = {**changes, **self._rooms}

    async def _write_rooms_at_stop(self) -> None:
        """
        Write the registered rooms changed since the last write, trying a
        failing disk a few times before saying which are lost.
        """
        if self._rooms_call is not None and self._rooms_call.active():
            self._rooms_call.cancel()
        self._rooms_call = None
        if self._rooms_writing is not None:
            await self._rooms_writing
        failures = 0
        while self._rooms and failures < STOP_TRIES:
            changes, self._rooms = self._rooms, {}
            try:
                await self._store_rooms(changes, self.reactor.seconds())
            except Exception:
                failures += 1
                log.failure(
                    "Storing {count} registered room(s) failed (try {attempt}"
                    " of {tries})",
                    count=len(changes),
                    attempt=failures,
                    tries=STOP_TRIES,
                )
                self._put_back_rooms(changes)
        if self._rooms:
            log.critical(
                "Changes to registered rooms {keys} could not be stored and are lost",
                keys=", ".join(sorted(self._rooms)),
            )
            self._rooms = {}

    def prune(self) -> Deferred[None]:
        before = self.reactor.seconds() - self.days * 86400 if self.days > 0 else 0.0
        d = self.query(lambda store: store.prune(self.max_per_room, before))

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
        self.history.archive = None
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        if self._pruner is not None and self._pruner.running:
            self._pruner.stop()
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        try:
            if self._writing is not None:
                await self._writing
            await self.write_all()
            await self._write_rooms_at_stop()
        finally:
            self._closed = True
            if self.shared:
                # Its threads would keep the process alive.
                self.connections.close()
            else:
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
                await self._insert(rows)
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
