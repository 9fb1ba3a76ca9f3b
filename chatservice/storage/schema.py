"""
The shape of the SQLite file, and how a file of any earlier shape is brought
up to it.

The version lives in SQLite's C{user_version}. L{migrate} runs each missing
step in a transaction of its own, so that a file is always at some version
and never half-way between two; a file from a newer server is refused rather
than guessed at.

History is stored as chunks: the records (L{chatservice.core.history}) one
room got within one group commit, in one row. One row per line costs SQLite
microseconds a line, which at a busy server's hundreds of thousands of lines
a second is a whole core; one row per chunk costs a few per commit. The
C{messages} view gives one row per line, for people and tools that query
the file (docs/protocol.md shows how).

Versions:
 1. History, in chunks of the line protocol's CRLF-ended wire lines.
 2. Accounts.
 3. History in the records of L{chatservice.core.history}, which no front
    end's rendering is part of; existing chunks are re-encoded.
 4. Room topics: the latest of each room, one row a room. Not history
    records: retention prunes lines, and a topic must outlive them.
 5. Registered rooms (L{chatservice.core.moderation.RoomRecord}), one row
    a room. What a room has several of (bans, mutes, operator accounts) and
    its settings are JSON in a column each rather than tables of their own:
    a room is always read and written whole, and one row a room is the
    unit a cluster will replicate.
 6. Server bans (one row a ban, keyed by its canonical mask; expired ones
    are deleted when the server meets them) and the audit log of
    moderation actions (one row an action, kept: retention is the
    operator's, with SQL).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from twisted.logger import Logger

log = Logger()


class DatabaseError(Exception):
    """
    The database cannot be used; the message says why, in one line.
    """


def _v3_record(line: bytes) -> bytes:
    """
    A history line as version 1 and 2 stored it, the wire line that was
    broadcast without its CRLF (C{[room] <nick> text} for a message,
    C{[room] * nick text} for an action), as a version 3 record.

    Room names hold no C{]} or space and nicknames no C{>} or space, so the
    first C{"] "} ends the room and the first C{"> "} or space the nick;
    the text may hold anything. This writes version 3's records itself
    rather than calling L{chatservice.core.history.encode_record}: a shipped
    migration must go on producing version 3, whatever later versions make
    of the codec.
    """
    body = line[line.index(b"] ") + 2 :]
    if body.startswith(b"<"):
        sender, found, text = body[1:].partition(b"> ")
        if not found:
            raise ValueError(line)
        return b"m" + sender + b" " + text + b"\n"
    if not body.startswith(b"* ") or b" " not in body[2:]:
        raise ValueError(line)
    return b"a" + body[2:] + b"\n"


def _records_from_wire_lines(db: sqlite3.Connection) -> None:
    """
    Re-encode every history chunk from wire lines to records, a few hundred
    chunks at a time, so that a big file is never all in memory.
    """
    last = 0
    while True:
        rows = db.execute(
            "SELECT id, lines FROM history WHERE id > ? ORDER BY id LIMIT 256",
            (last,),
        ).fetchall()
        if not rows:
            return
        updates = []
        for chunk, blob in rows:
            try:
                records = b"".join(
                    _v3_record(line) for line in bytes(blob).split(b"\r\n")[:-1]
                )
            except ValueError as e:
                raise DatabaseError(
                    f"history chunk {chunk} holds a line that is not a message"
                    f" or an action: {e.args[0]!r}"
                ) from None
            updates.append((records, chunk))
        db.executemany("UPDATE history SET lines = ? WHERE id = ?", updates)
        last = rows[-1][0]


Step = str | Callable[[sqlite3.Connection], None]
"""
One step of a migration: an SQL statement, or a function that runs its own
on the connection (inside the migration's transaction).
"""

SCHEMA_VERSION = 6
# MIGRATIONS[n] takes a database from version n to n + 1. Never edit one
# that has shipped: add the next.
MIGRATIONS: dict[int, list[Step]] = {
    0: [
        # History as chunks of wire lines; see _v3_record for their shapes,
        # and the module docstring for why chunks.
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
    2: [
        "DROP VIEW messages",
        _records_from_wire_lines,
        # A record is a kind letter, the sender, a space and the text; the
        # first space ends the sender. The recursive split walks every chunk
        # breadth first, hence the ORDER BY.
        """
        CREATE VIEW messages (chunk, line, time, room, sender, kind, text) AS
        WITH RECURSIVE split(chunk, line, time, room, record, rest) AS (
            SELECT id, 0, time, room, NULL, CAST(lines AS TEXT) FROM history
            UNION ALL
            SELECT chunk, line + 1, time, room,
                   substr(rest, 1, instr(rest, char(10)) - 1),
                   substr(rest, instr(rest, char(10)) + 1)
            FROM split WHERE rest != ''
        )
        SELECT chunk, line, time, room,
               substr(record, 2, instr(record, ' ') - 2),
               CASE substr(record, 1, 1)
                    WHEN 'm' THEN 'message'
                    WHEN 'a' THEN 'action' END,
               substr(record, instr(record, ' ') + 1)
        FROM split WHERE record IS NOT NULL
        ORDER BY chunk, line
        """,
    ],
    3: [
        # A cleared topic is a deleted row.
        """
        CREATE TABLE topics (
            room_key TEXT PRIMARY KEY,
            room TEXT NOT NULL,
            topic TEXT NOT NULL,
            nick TEXT NOT NULL,
            time REAL NOT NULL
        )
        """,
    ],
    4: [
        # settings: a JSON object of the room's flags, key and limit; bans
        # and quiets: JSON lists of {mask, by, at, expires, reason}
        # objects; op_accounts: a JSON list of folded account names.
        # updated: when the row was last written, for people reading the
        # file.
        """
        CREATE TABLE rooms (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            founder TEXT NOT NULL,
            settings TEXT NOT NULL,
            bans TEXT NOT NULL,
            quiets TEXT NOT NULL,
            op_accounts TEXT NOT NULL,
            updated REAL NOT NULL
        )
        """,
    ],
    5: [
        # expires NULL: for ever.
        """
        CREATE TABLE server_bans (
            mask TEXT PRIMARY KEY,
            by TEXT NOT NULL,
            at REAL NOT NULL,
            expires REAL,
            reason TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            room TEXT NOT NULL,
            detail TEXT NOT NULL
        )
        """,
    ],
}


def migrate(db: sqlite3.Connection, path: str) -> int:
    """
    Bring the schema of C{db} (the file at C{path}, named in errors and the
    log) up to L{SCHEMA_VERSION}, one version per transaction, and return
    the version found.
    """
    (found,) = db.execute("PRAGMA user_version").fetchone()
    if found > SCHEMA_VERSION:
        raise DatabaseError(
            f"{path} has schema version {found}; this server knows "
            f"versions up to {SCHEMA_VERSION}"
        )
    for version in range(found, SCHEMA_VERSION):
        db.execute("BEGIN")
        try:
            for step in MIGRATIONS[version]:
                if isinstance(step, str):
                    db.execute(step)
                else:
                    step(db)
            db.execute(f"PRAGMA user_version = {version + 1}")
        except DatabaseError as e:
            db.execute("ROLLBACK")
            raise DatabaseError(
                f"cannot migrate {path} to schema version {version + 1}: {e}"
            ) from None
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        log.info(
            "Migrated {path} to schema version {version}",
            path=path,
            version=version + 1,
        )
    return int(found)
