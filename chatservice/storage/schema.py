"""
The shape of the SQLite file, and how a file of any earlier shape is brought
up to it.

The version lives in SQLite's C{user_version}. L{migrate} runs each missing
step in a transaction of its own, so that a file is always at some version
and never half-way between two; a file from a newer server is refused rather
than guessed at.
"""

from __future__ import annotations

import sqlite3

from twisted.logger import Logger

log = Logger()


class DatabaseError(Exception):
    """
    The database cannot be used; the message says why, in one line.
    """


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
            for statement in MIGRATIONS[version]:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {version + 1}")
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
