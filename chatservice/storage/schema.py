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

PostgreSQL (L{migrate_postgresql}) has no earlier shapes to climb from: a
new database is made at the current version in one go, from
L{CURRENT_TABLES}, the tables as the SQLite migrations leave them, written
with the types each engine names differently (L{chatservice.storage.dialect})
left as templates. A test checks that the templates are what the
migrations make, so neither can drift. The version lives in a one-row table,
C{schema_version}; the steps of a later version go in L{MIGRATIONS} for
SQLite and in L{POSTGRESQL_MIGRATIONS} for PostgreSQL, so that both engines
keep one shape.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from twisted.logger import Logger

from chatservice.storage.dialect import POSTGRESQL, Connection, Dialect

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


# The tables at SCHEMA_VERSION, as the SQLite migrations above leave them,
# with each engine's type for a role in braces (see Dialect.ddl); and the
# indexes. Change them with every migration that changes a table.
CURRENT_TABLES: dict[str, str] = {
    "history": """
        CREATE TABLE history (
            id {id},
            time {float} NOT NULL,
            room_key TEXT NOT NULL,
            room TEXT NOT NULL,
            count INTEGER NOT NULL,
            lines {bytes} NOT NULL
        )
        """,
    "accounts": """
        CREATE TABLE accounts (
            nick_key TEXT PRIMARY KEY,
            nick TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            created {float} NOT NULL
        )
        """,
    "topics": """
        CREATE TABLE topics (
            room_key TEXT PRIMARY KEY,
            room TEXT NOT NULL,
            topic TEXT NOT NULL,
            nick TEXT NOT NULL,
            time {float} NOT NULL
        )
        """,
    "rooms": """
        CREATE TABLE rooms (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            founder TEXT NOT NULL,
            settings TEXT NOT NULL,
            bans TEXT NOT NULL,
            quiets TEXT NOT NULL,
            op_accounts TEXT NOT NULL,
            updated {float} NOT NULL
        )
        """,
    "server_bans": """
        CREATE TABLE server_bans ({order_column}
            mask TEXT PRIMARY KEY,
            by TEXT NOT NULL,
            at {float} NOT NULL,
            expires {float},
            reason TEXT NOT NULL
        )
        """,
    "audit": """
        CREATE TABLE audit (
            id {id},
            time {float} NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            room TEXT NOT NULL,
            detail TEXT NOT NULL
        )
        """,
}
CURRENT_INDEXES = ["CREATE INDEX history_by_room ON history (room_key, id)"]

# The messages view of version 3 on, in PostgreSQL's words: one row a line,
# in the order said.
POSTGRESQL_MESSAGES_VIEW = """
    CREATE VIEW messages (chunk, line, time, room, sender, kind, text) AS
    SELECT history.id, split.line, history.time, history.room,
           substr(split_part(split.record, ' ', 1), 2),
           CASE left(split.record, 1)
                WHEN 'm' THEN 'message'
                WHEN 'a' THEN 'action' END,
           substr(split.record, strpos(split.record, ' ') + 1)
    FROM history
    CROSS JOIN LATERAL unnest(
        string_to_array(convert_from(history.lines, 'UTF8'), chr(10))
    ) WITH ORDINALITY AS split(record, line)
    WHERE split.record <> ''
    ORDER BY history.id, split.line
    """

# POSTGRESQL_MIGRATIONS[n] takes a PostgreSQL database from version n to
# n + 1, for n from POSTGRESQL_FIRST_VERSION on. Never edit one that has
# shipped: add the next.
POSTGRESQL_FIRST_VERSION = 6
POSTGRESQL_MIGRATIONS: dict[int, list[str]] = {}
# Two servers starting on one new database at once make the tables once:
# the second waits on this lock (any number, the same in every server)
# and then finds them.
_MIGRATION_LOCK = 0x63686174


def current_schema(dialect: Dialect) -> list[str]:
    """
    The statements that make the tables and indexes of L{SCHEMA_VERSION}
    in C{dialect}'s engine (its views aside).
    """
    return [dialect.ddl(t) for t in CURRENT_TABLES.values()] + CURRENT_INDEXES


def migrate_postgresql(db: Connection, where: str) -> int:
    """
    Make the schema of the PostgreSQL database C{db} (C{where}, in errors
    and the log) the current one, in one transaction, and return the
    version found (0 for a new database).
    """
    with POSTGRESQL.transaction(db):
        db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        (table,) = db.execute("SELECT to_regclass('schema_version')").fetchone()
        if table is None:
            (found,) = db.execute("SELECT to_regclass('history')").fetchone()
            if found is not None:
                raise DatabaseError(
                    f"{where} has a history table but no schema_version: "
                    "not a database this server made"
                )
            for statement in [
                "CREATE TABLE schema_version (version INTEGER NOT NULL)",
                *current_schema(POSTGRESQL),
                POSTGRESQL_MESSAGES_VIEW,
            ]:
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,)
            )
            log.info(
                "Made the tables of schema version {version} in {where}",
                version=SCHEMA_VERSION,
                where=where,
            )
            return 0
        row = db.execute("SELECT max(version) FROM schema_version").fetchone()
        found = int(row[0]) if row and row[0] is not None else 0
        if found > SCHEMA_VERSION:
            raise DatabaseError(
                f"{where} has schema version {found}; this server knows "
                f"versions up to {SCHEMA_VERSION}"
            )
        if found < POSTGRESQL_FIRST_VERSION:
            raise DatabaseError(
                f"{where} has schema version {found}; no server made one"
                f" below {POSTGRESQL_FIRST_VERSION} in PostgreSQL"
            )
        for version in range(found, SCHEMA_VERSION):
            for statement in POSTGRESQL_MIGRATIONS[version]:
                db.execute(statement)
            db.execute("UPDATE schema_version SET version = ?", (version + 1,))
            log.info(
                "Migrated {where} to schema version {version}",
                where=where,
                version=version + 1,
            )
        return found
