"""
What differs between the two engines the store runs on, SQLite and
PostgreSQL, and nothing else: the store's queries are written once, in
SQL both understand, and this is where the few differences live.

 - Parameters: the queries use C{?}; psycopg wants C{%s} (and a literal
   C{%} doubled), so L{Dialect.sql} converts them, as Synapse's
   C{convert_param_style} does.
 - Column types: C{REAL} is 4 bytes in PostgreSQL, so times are C{DOUBLE
   PRECISION} there; C{BLOB} is C{BYTEA}; an C{INTEGER PRIMARY KEY} (SQLite's
   rowid) is a C{BIGSERIAL PRIMARY KEY}. The schema's templates
   (L{chatservice.storage.schema.CURRENT_TABLES}) name them by role and
   L{Dialect.ddl} fills them in.
 - Insertion order: SQLite numbers every row (C{rowid}); a PostgreSQL table
   that needs the order gets a C{seq} column for it.
 - Transactions: the SQLite connection is in autocommit mode and a
   transaction is C{BEGIN IMMEDIATE} (the write lock at once) to C{COMMIT};
   psycopg has its own C{transaction()} block, a savepoint inside a
   transaction already open.

Upserts need no difference: both engines take C{INSERT ... ON CONFLICT (key)
DO UPDATE SET ... = excluded....} and C{ON CONFLICT DO NOTHING} (SQLite
since 3.24), which the store uses in place of SQLite's own C{INSERT OR
REPLACE}.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

POSTGRESQL_SCHEMES = ("postgresql", "postgres")


class Cursor(Protocol):
    """The rows of a statement: what both engines' cursors have."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ..., /) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """
    What the store runs its queries on: a C{sqlite3.Connection} itself, or
    L{chatservice.storage.postgres.PostgresConnection} around psycopg's.
    """

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Any, /) -> Cursor: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Dialect:
    """
    One engine's differences.

    @ivar name: the engine, for messages.
    @ivar types: what each role in a schema template is in this engine.
    @ivar insertion_order: the column that orders a table's rows as they
        were inserted, in a table that has no id of its own.
    """

    name: str
    types: Mapping[str, str]
    insertion_order: str
    percent_params: bool

    def sql(self, query: str) -> str:
        """C{query}, written with C{?} parameters, as this engine takes it."""
        return _percent(query) if self.percent_params else query

    def ddl(self, template: str) -> str:
        """The statement C{template} (with C{{role}} types) for this engine."""
        return template.format_map(self.types)

    @contextmanager
    def transaction(self, connection: Any) -> Iterator[None]:
        """
        A transaction on C{connection}: committed if the block ends,
        rolled back if it raises.
        """
        if self is SQLITE:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        else:
            with connection.transaction():
                yield


@functools.lru_cache(maxsize=256)
def _percent(query: str) -> str:
    # The store's queries hold no ? but parameters (no string literal
    # holds one), so a plain replace is the whole conversion.
    return query.replace("%", "%%").replace("?", "%s")


SQLITE = Dialect(
    name="SQLite",
    types={
        "id": "INTEGER PRIMARY KEY",
        "float": "REAL",
        "bytes": "BLOB",
        # SQLite numbers rows itself (rowid).
        "order_column": "",
    },
    insertion_order="rowid",
    percent_params=False,
)

POSTGRESQL = Dialect(
    name="PostgreSQL",
    types={
        "id": "BIGSERIAL PRIMARY KEY",
        "float": "DOUBLE PRECISION",
        "bytes": "BYTEA",
        "order_column": "seq BIGSERIAL NOT NULL,",
    },
    insertion_order="seq",
    percent_params=True,
)


def is_postgresql_url(database: str) -> bool:
    """
    Whether C{--database} names a PostgreSQL database (a C{postgresql://} or
    C{postgres://} URL) rather than a SQLite file.
    """
    # As libpq reads them: in lower case only.
    scheme, found, _ = database.partition("://")
    return bool(found) and scheme in POSTGRESQL_SCHEMES


def redacted(url: str) -> str:
    """
    C{url} without its password, if it has one: fit for a log line or an
    error message.
    """
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            user = parts.username or ""
            parts = parts._replace(netloc=f"{user}:***@{host}")
        query = "&".join(
            "password=***" if pair.lower().startswith("password=") else pair
            for pair in parts.query.split("&")
        )
        hidden = urlunsplit(parts._replace(query=query))
        # Rebuilt only if something was hidden: urlunsplit lowers the scheme.
        return url if "***" not in hidden else hidden
    except ValueError:
        return url.split("://", 1)[0] + "://..."
