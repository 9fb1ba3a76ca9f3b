"""
The queries, run synchronously: room history in chunks, room topics,
accounts, registered rooms, server bans and the audit log. Opening a SQLite
file here also locks and migrates it.

The queries are written once, in SQL that SQLite and PostgreSQL both take,
with C{?} parameters; a L{Store} runs them on either engine's connection,
through its L{Dialect} (L{chatservice.storage.dialect}) for the few things
that differ. L{chatservice.storage.postgres} opens the PostgreSQL one.

A L{Store} belongs to one thread at a time: the main thread at start-up,
then only the database thread of L{chatservice.storage.database.Database}
(or, on PostgreSQL, the connection pool's thread, with a store around the
connection it lends), which is what keeps the reactor thread off the disk
and the network.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from twisted.logger import Logger

from chatservice.core.accounts import Account
from chatservice.core.audit import AuditEntry
from chatservice.core.events import Topic
from chatservice.core.history import Place, Stored, Unwritten
from chatservice.core.moderation import RoomRecord
from chatservice.core.sanitize import safe
from chatservice.core.server_bans import ServerBan
from chatservice.storage.dialect import SQLITE, Connection, Dialect
from chatservice.storage.rooms import from_row, to_row
from chatservice.storage.schema import DatabaseError, migrate, migrate_postgresql

log = Logger()

# About the most bytes in one chunk, so that splitting one (the messages
# view copies the rest of a chunk per line) stays cheap.
CHUNK_BYTES = 16 * 1024
# Above every chunk id: "no upper bound" in a query that takes one.
NO_CHUNK = 2**63 - 1
# Chunks read at once while walking a room newest first: a few at first
# (a tail or a page usually ends within them), then more. A PostgreSQL
# cursor fetches its whole result, so the walk never asks for all.
FIRST_BATCH = 4
LAST_BATCH = 256


def split_records(blob: bytes) -> list[bytes]:
    """
    The records of a chunk, each with its newline, as
    L{chatservice.core.history.encode_record} made them.
    """
    return [record + b"\n" for record in blob.split(b"\n")[:-1]]


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


class Store:
    """
    The queries, run synchronously: at start-up on the main thread, then
    only on the database thread.

    @ivar connection: a C{sqlite3.Connection} in autocommit mode, or a
        L{chatservice.storage.postgres.PostgresConnection}.
    @ivar path: the file, or the database's URL without its password: what
        messages name.
    """

    def __init__(
        self, connection: Connection, path: str, dialect: Dialect = SQLITE
    ) -> None:
        self.connection: Connection = connection
        self.path = path
        self.dialect = dialect

    def migrate(self) -> int:
        """
        Bring the schema up to date; return the version found.
        """
        if self.dialect is SQLITE:
            assert isinstance(self.connection, sqlite3.Connection)
            return migrate(self.connection, self.path)
        return migrate_postgresql(self.connection, self.path)

    def _newest_first(
        self, columns: str, room_key: str, below: int = NO_CHUNK
    ) -> Iterator[tuple[Any, ...]]:
        """
        The id and C{columns} of a room's chunks older than C{below}, newest
        first, read a batch at a time for as long as the caller takes them.
        """
        size = FIRST_BATCH
        while True:
            rows = self.connection.execute(
                f"SELECT id, {columns} FROM history WHERE room_key = ? AND id < ?"
                " ORDER BY id DESC LIMIT ?",
                (room_key, below, size),
            ).fetchall()
            yield from rows
            if len(rows) < size:
                return
            below = rows[-1][0]
            size = min(size * 4, LAST_BATCH)

    def room_keys(self) -> list[str]:
        return [
            key
            for (key,) in self.connection.execute(
                "SELECT DISTINCT room_key FROM history"
            )
        ]

    def tails(self, keep: int) -> list[tuple[float, str, bytes]]:
        """
        At least the last C{keep} records of every room, as (time, room
        key, record), each room oldest first. Read chunk by chunk from the
        newest, through the room index.
        """
        records: list[tuple[float, str, bytes]] = []
        for key in self.room_keys():
            chunks: list[tuple[float, bytes]] = []
            have = 0
            for _, when, count, blob in self._newest_first("time, count, lines", key):
                chunks.append((when, bytes(blob)))
                have += count
                if have >= keep:
                    break
            for when, blob in reversed(chunks):
                records.extend((when, key, r) for r in split_records(blob))
        return records

    def page(
        self, room_key: str, n: int, place: Place | None, skip: int
    ) -> Stored | None:
        """
        Up to C{n} lines of a room, oldest first, read newest first through
        the room index: those before C{place} (chunk, index), or without
        one, those before the C{skip} newest; and the place of the lines
        before them, None if there are none. None if the chunk of C{place}
        is another room's. (A chunk retention removed has no older ones
        left, so a place in it gives what is left: nothing.)
        """
        db = self.connection
        if place is not None:
            chunk, index = place
            owner = db.execute(
                "SELECT room_key FROM history WHERE id = ?", (chunk,)
            ).fetchone()
            if owner is not None and owner[0] != room_key:
                return None
            rows = self._newest_first("time, lines", room_key, chunk + 1)
        else:
            chunk, index = -1, 0
            rows = self._newest_first("time, lines", room_key)
        found: list[tuple[float, list[bytes]]] = []
        older: Place | None = None
        need = n
        for row_id, when, blob in rows:
            records = split_records(bytes(blob))
            if row_id == chunk:
                records = records[:index]
            if skip:
                if skip >= len(records):
                    skip -= len(records)
                    continue
                records = records[: len(records) - skip]
                skip = 0
            if not records:
                continue
            if need <= 0:
                # There is an older line: the page before is where the
                # last one taken begins.
                break
            taken = records[-need:]
            found.append((when, taken))
            need -= len(taken)
            older = (row_id, len(records) - len(taken))
            if older[1] > 0:
                break
        else:
            older = None
        lines = [(when, r) for when, records in reversed(found) for r in records]
        return lines, older

    def topics(self) -> list[tuple[str, Topic]]:
        """
        Every room's topic, by room key.
        """
        return [
            (key, Topic(room, text, nick, when))
            for key, room, text, nick, when in self.connection.execute(
                "SELECT room_key, room, topic, nick, time FROM topics"
            )
        ]

    def insert(self, taken: dict[str, Unwritten]) -> None:
        """
        Store each room's unwritten records, in one transaction: a chunk per
        room (and per L{CHUNK_BYTES}), dated by its first line, so that the
        time a line shows is off by at most one flush interval; and each
        topic set (or cleared) since the last write.
        """
        set_topics = []
        cleared = []
        for room_key, unwritten in taken.items():
            topic = unwritten.topic
            if topic is None:
                continue
            if topic.text:
                set_topics.append(
                    (room_key, topic.room, topic.text, topic.nick, topic.time)
                )
            else:
                cleared.append((room_key,))
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
            if set_topics:
                self.connection.executemany(
                    "INSERT INTO topics (room_key, room, topic, nick, time)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_key) DO UPDATE"
                    " SET room = excluded.room, topic = excluded.topic,"
                    " nick = excluded.nick, time = excluded.time",
                    set_topics,
                )
            if cleared:
                self.connection.executemany(
                    "DELETE FROM topics WHERE room_key = ?", cleared
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
                # Nothing as new as that: every chunk goes.
                cutoff = first_kept[0] if first_kept else NO_CHUNK
                deleted += self._delete("id < ?", (cutoff,))
            if max_per_room > 0:
                for key in self.room_keys():
                    kept = 0
                    oldest_kept = None
                    for chunk_id, count in self._newest_first("count", key):
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

    def account(self, nick_key: str) -> Account | None:
        """
        The account of the folded nickname C{nick_key}, if there is one:
        for an account another server (sharing a PostgreSQL database) has
        registered since this one loaded them all.
        """
        row = self.connection.execute(
            "SELECT nick, password_hash FROM accounts WHERE nick_key = ?",
            (nick_key,),
        ).fetchone()
        return None if row is None else Account(row[0], row[1])

    def insert_account(
        self, nick_key: str, nick: str, password_hash: str, now: float
    ) -> bool:
        """
        Store a new account, if its name is nobody's yet; return whether it
        was stored. Two servers registering one name at once on one
        database: exactly one gets True.
        """
        with self._transaction():
            cursor = self.connection.execute(
                "INSERT INTO accounts (nick_key, nick, password_hash, created)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (nick_key) DO NOTHING",
                (nick_key, nick, password_hash, now),
            )
            return cursor.rowcount == 1

    def set_password(self, nick_key: str, password_hash: str) -> bool:
        """
        Change the password (hash) of an account; return whether there was
        one to change.
        """
        with self._transaction():
            cursor = self.connection.execute(
                "UPDATE accounts SET password_hash = ? WHERE nick_key = ?",
                (password_hash, nick_key),
            )
            return cursor.rowcount == 1

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

    def rooms(self) -> list[RoomRecord]:
        """
        Every registered room. A row that keeps no room (edited by hand,
        say) is skipped with a log line naming it: one bad room must not
        keep the server, or the other rooms, from starting.
        """
        records = []
        for row in self.connection.execute(
            "SELECT key, name, founder, settings, bans, quiets, op_accounts,"
            " updated FROM rooms ORDER BY key"
        ):
            try:
                records.append(from_row(row))
            except (ValueError, TypeError) as e:
                log.error(
                    "Skipped registered room {key} of {path}: {reason}",
                    key=safe(str(row[0]))[:64],
                    path=self.path,
                    reason=safe(str(e))[:200],
                )
        return records

    def save_room(self, record: RoomRecord, updated: float | None = None) -> None:
        """Keep the registered room C{record}, in place of what was kept."""
        self.write_rooms({record.key: record}, updated)

    def forget_room(self, key: str) -> None:
        """Keep the room whose folded name is C{key} no more."""
        self.write_rooms({key: None})

    def write_rooms(
        self, changes: Mapping[str, RoomRecord | None], updated: float | None = None
    ) -> None:
        """
        Keep each room of C{changes} (folded name to its record, or None to
        forget it) in one transaction, dated C{updated} (now if None).
        """
        when = time.time() if updated is None else updated
        saved = [to_row(r, when) for r in changes.values() if r is not None]
        forgotten = [(key,) for key, r in changes.items() if r is None]
        with self._transaction():
            if saved:
                self.connection.executemany(
                    "INSERT INTO rooms (key, name, founder, settings,"
                    " bans, quiets, op_accounts, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE"
                    " SET name = excluded.name, founder = excluded.founder,"
                    " settings = excluded.settings, bans = excluded.bans,"
                    " quiets = excluded.quiets, op_accounts = excluded.op_accounts,"
                    " updated = excluded.updated",
                    saved,
                )
            if forgotten:
                self.connection.executemany(
                    "DELETE FROM rooms WHERE key = ?", forgotten
                )

    def server_bans(self) -> list[ServerBan]:
        """Every stored server ban, oldest first."""
        return [
            ServerBan(mask, by, at, expires, reason)
            for mask, by, at, expires, reason in self.connection.execute(
                "SELECT mask, by, at, expires, reason FROM server_bans"
                f" ORDER BY at, {self.dialect.insertion_order}"
            )
        ]

    def save_server_ban(self, ban: ServerBan) -> None:
        """
        Store C{ban}, replacing one on the same mask: deleted and inserted,
        so that it is as new in the order of insertion as the ban it is.
        """
        with self._transaction():
            self.connection.execute(
                "DELETE FROM server_bans WHERE mask = ?", (ban.mask,)
            )
            self.connection.execute(
                "INSERT INTO server_bans (mask, by, at, expires, reason)"
                " VALUES (?, ?, ?, ?, ?)",
                (ban.mask, ban.by, ban.at, ban.expires, ban.reason),
            )

    def delete_server_ban(self, mask: str) -> None:
        with self._transaction():
            self.connection.execute("DELETE FROM server_bans WHERE mask = ?", (mask,))

    def audit(self, n: int) -> list[AuditEntry]:
        """The newest C{n} audit entries, oldest first."""
        rows = self.connection.execute(
            "SELECT time, actor, action, target, room, detail FROM audit"
            " ORDER BY id DESC LIMIT ?",
            (n,),
        ).fetchall()
        return [AuditEntry(*row) for row in reversed(rows)]

    def save_audit(self, entry: AuditEntry) -> None:
        with self._transaction():
            self.connection.execute(
                "INSERT INTO audit (time, actor, action, target, room, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    entry.time,
                    entry.actor,
                    entry.action,
                    entry.target,
                    entry.room,
                    entry.detail,
                ),
            )

    def close(self) -> None:
        self.connection.close()

    def _transaction(self) -> AbstractContextManager[None]:
        return self.dialect.transaction(self.connection)


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
        read_everything(store)
    except sqlite3.Error as e:
        raise DatabaseError(f"cannot read {path}: {e}") from None
    finally:
        store.close()


def read_everything(store: Store) -> None:
    """
    Read a little of every table the server loads at start, so that a
    database it could not serve from fails now, in one line.
    """
    store.tails(1)
    store.topics()
    store.accounts()
    store.rooms()
    store.server_bans()
    store.audit(1)
