"""
C{chat-migrate-db SQLITE_PATH POSTGRESQL_URL}: move a single server's
database into PostgreSQL, so that a community can grow to several servers
without losing anything (as Synapse's C{synapse_port_db} does).

Everything the server stores is copied, row for row and byte for byte:
history (every chunk, in order, with its id, so the messages view and any
saved place in it read the same), topics, accounts, registered rooms,
server bans (in the order they were set) and the audit log. The target
must be empty (its tables are made if it has none); the copy is one
transaction, so a failure leaves it as it was. The SQLite file is opened as
the server opens it: locked (a server still running on it is refused, as
its latest lines would be missed) and brought up to the current schema
version first.

It runs synchronously, as a tool, not under the reactor. Exit status: 0
copied; 1 nothing copied (a database that cannot be used, a target that is
not empty, a failed copy); 2 a bad command line.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from chatservice.storage.dialect import POSTGRESQL, is_postgresql_url, redacted
from chatservice.storage.schema import CURRENT_TABLES, DatabaseError
from chatservice.storage.store import Store, open_store

PROGRAM = "chat-migrate-db"
# Rows read from SQLite and written to PostgreSQL at a time.
BATCH = 500

# How each table's rows are named when the counts are printed.
NAMES = {
    "history": "history chunks",
    "topics": "topics",
    "accounts": "accounts",
    "rooms": "registered rooms",
    "server_bans": "server bans",
    "audit": "audit entries",
}


class Refused(Exception):
    """Nothing was copied; the message says why, in one line."""


@dataclass
class Copied:
    """How many rows of each table were copied, and history's lines."""

    rows: dict[str, int]
    lines: int


def columns(source: Store, table: str) -> list[str]:
    """The columns of C{table}, as the SQLite file has them."""
    return [row[1] for row in source.connection.execute(f"PRAGMA table_info({table})")]


def check_empty(target: Store) -> None:
    """Refuse a target that holds anything the server stores."""
    held = [
        NAMES[table]
        for table in CURRENT_TABLES
        if target.connection.execute(
            f"SELECT EXISTS (SELECT 1 FROM {table})"
        ).fetchone()[0]
    ]
    if held:
        raise Refused(
            f"{target.path} is not empty (it holds {', '.join(held)}); "
            f"{PROGRAM} copies only into an empty database"
        )


def copy(source: Store, target: Store) -> Copied:
    """
    Copy every table of C{source} (SQLite) into C{target} (PostgreSQL,
    empty), in one transaction of C{target}'s.
    """
    from chatservice.storage.postgres import reset_sequences

    rows: dict[str, int] = {}
    with POSTGRESQL.transaction(target.connection):
        check_empty(target)
        for table in CURRENT_TABLES:
            names = columns(source, table)
            listed = ", ".join(names)
            insert = (
                f"INSERT INTO {table} ({listed})"
                f" VALUES ({', '.join('?' for _ in names)})"
            )
            # In the order of insertion: history's and the audit's ids,
            # and the server bans' order, are the rowid's.
            cursor = source.connection.execute(
                f"SELECT {listed} FROM {table} ORDER BY rowid"
            )
            count = 0
            while batch := cursor.fetchmany(BATCH):
                target.connection.executemany(insert, batch)
                count += len(batch)
            rows[table] = count
        reset_sequences(target)
    (lines,) = source.connection.execute(
        "SELECT coalesce(sum(count), 0) FROM history"
    ).fetchone()
    return Copied(rows, int(lines))


def migrate(sqlite_path: str, url: str) -> Copied:
    """
    Copy the SQLite database at C{sqlite_path} into the empty PostgreSQL
    database at C{url}; raises L{Refused} or L{DatabaseError} (nothing
    copied) with a one-line reason.
    """
    import psycopg

    from chatservice.storage.postgres import one_line, open_postgres

    if not os.path.isfile(sqlite_path):
        raise Refused(f"{sqlite_path}: no such file")
    source = open_store(sqlite_path)
    try:
        target = open_postgres(url)
        try:
            return copy(source, target)
        except psycopg.Error as e:
            raise Refused(
                f"copying into {target.path} failed, nothing was copied: {one_line(e)}"
            ) from None
        except sqlite3.Error as e:
            raise Refused(
                f"reading {sqlite_path} failed, nothing was copied: {e}"
            ) from None
        finally:
            target.close()
    finally:
        source.close()


def report(copied: Copied, sqlite_path: str, url: str) -> str:
    rows = copied.rows
    lines = [
        f"Copied {sqlite_path} to {redacted(url)}:",
        f"  history: {copied.lines} lines in {rows['history']} chunks",
    ]
    lines += [
        f"  {NAMES[table]}: {count}"
        for table, count in rows.items()
        if table != "history"
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=(
            "Copy a chat server's SQLite database (history, topics, accounts, "
            "registered rooms, server bans, audit log) into an empty "
            "PostgreSQL database, for servers that share one. Stop the "
            "server first."
        ),
    )
    parser.add_argument("sqlite_path", metavar="SQLITE_PATH")
    parser.add_argument(
        "url",
        metavar="POSTGRESQL_URL",
        help="a libpq URL, such as postgresql://chat@/chat?host=/run/postgresql",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not is_postgresql_url(args.url):
        print(
            f"{PROGRAM}: {redacted(args.url)} is not a postgresql:// URL",
            file=sys.stderr,
        )
        return 2
    try:
        copied = migrate(args.sqlite_path, args.url)
    except (Refused, DatabaseError) as e:
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return 1
    print(report(copied, args.sqlite_path, args.url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
