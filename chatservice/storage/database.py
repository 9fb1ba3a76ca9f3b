"""
The database service: room history, topics, accounts and registered rooms
in SQLite, on one connection used by one thread of its own. The file's
shape is L{chatservice.storage.schema}'s and the queries are
L{chatservice.storage.store}'s; this module runs them in order, off the
reactor thread.

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
from chatservice.storage.schema import DatabaseError
from chatservice.storage.store import Store, check, open_store

# The server names these here: the service, what stops it starting, and the
# check it runs before it forks.
__all__ = ["Database", "DatabaseError", "check"]

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
# How much lower than the reactor thread the database thread runs.
BACKGROUND_NICE = 10


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


class Database(Service):
    """
    The database thread: group commits of history, retention, and any other
    query the server runs, all in order.

    Starting opens the file and loads what the server keeps in memory: the
    tail of every room's history, every room's topic, the accounts,
    (handed to C{load_rooms}) the registered rooms, the server bans and the
    newest of the audit log; the bans and the audit log are then given this
    database to save to. L{save_room} and L{forget_room} are what the chat
    calls when a registered room changes.
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
        self.store = open_store(self.path)
        if self.history.unwritten is not None:
            self.history.load(self.store.tails(self.history.keep))
            self.history.load_topics(self.store.topics())
        self.accounts.update(self.store.accounts())
        if self.load_rooms is not None:
            self.load_rooms(self.store.rooms())
        if self.server_bans is not None:
            self.server_bans.load(self.store.server_bans())
            self.server_bans.save = lambda ban: self.write(
                "the server ban", self.store.save_server_ban, ban
            )
            self.server_bans.delete = lambda mask: self.write(
                "lifting the server ban", self.store.delete_server_ban, mask
            )
        if self.audit is not None:
            self.audit.load(self.store.audit(KEEP))
            self.audit.save = lambda entry: self.write(
                "the audit entry", self.store.save_audit, entry
            )
        log.info("Using database {path}", path=self.path)
        super().startService()
        self.pool.start()
        self.pool.callInThread(_background)
        self.history.wake = self._wake
        if self.history.unwritten is not None:
            self.history.archive = self.older
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

    def write(self, what: str, f: Callable[..., object], *args: object) -> None:
        """
        Run the write C{f(*args)} on the database thread, in order, for
        whoever does not wait for it: a failure is logged, naming C{what}.
        """

        def failed(failure: Any) -> None:
            log.failure("Storing {what} failed", failure, what=what)

        self.run(f, *args).addErrback(failed)

    def older(
        self, room_key: str, n: int, place: Place | None, skip: int
    ) -> Deferred[Stored | None]:
        """
        Lines of a room older than the history keeps in memory
        (L{Store.page}), read on the database thread. Queued behind every
        write already asked for, so the lines the tail has handed over are
        in the file when it runs.
        """
        return self.run(self.store.page, room_key, n, place, skip)

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
        writing = self._rooms_writing = self.run(
            self.store.write_rooms, changes, self.reactor.seconds()
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
                await self.run(self.store.write_rooms, changes, self.reactor.seconds())
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
        self.history.archive = None
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
        await self._write_rooms_at_stop()
        self._closed = True
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
