"""
PostgreSQL for the store: psycopg 3 connections, as the store's queries
want them, and the adbapi pool the server runs them on.

The store's queries are the SQLite store's (L{chatservice.storage.store});
L{PostgresConnection} is the thin coat that lets them run on psycopg (the
parameter style converted by L{chatservice.storage.dialect.POSTGRESQL}).

Two ways in:
 - L{open_postgres}: one plain connection, in autocommit mode, each store
   method's transaction its own: for start-up (the check before twistd
   forks, the load before anything listens) and for C{chat-migrate-db}.
 - L{connection_pool}: the server's C{twisted.enterprise.adbapi} pool, as
   Synapse runs PostgreSQL, with C{cp_reconnect} so that a connection
   PostgreSQL dropped (a restart, a failover) is replaced on the next use.
   One connection, on one thread: the same single ordered lane the SQLite
   database thread is, so a ban lifted after it was set stays lifted and a
   page of history is read after the lines handed to it are written. A
   node's traffic (a group commit every 50 ms, a login now and then) is
   far from what one connection carries.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from chatservice.storage.dialect import POSTGRESQL, Cursor, redacted
from chatservice.storage.schema import DatabaseError
from chatservice.storage.store import Store

T = TypeVar("T")

# Seconds to wait for a connection before giving up, unless the URL says
# (connect_timeout): libpq's own default is to wait for ever.
CONNECT_TIMEOUT = 10
# How the server's connections show in pg_stat_activity, unless the URL
# names another (application_name).
APPLICATION_NAME = "chatservice"


class PostgresConnection:
    """
    A psycopg connection (or adbapi's wrapper around one) as the store
    runs queries on it: C{execute} and C{executemany} on a new cursor each,
    their C{?} parameters converted, and psycopg's transaction blocks.
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        cursor = self.connection.cursor()
        # Always a sequence, even empty: the conversion doubled any %.
        cursor.execute(POSTGRESQL.sql(sql), parameters)
        return cursor  # type: ignore[no-any-return]

    def executemany(self, sql: str, parameters: Any, /) -> Cursor:
        cursor = self.connection.cursor()
        cursor.executemany(POSTGRESQL.sql(sql), parameters)
        return cursor  # type: ignore[no-any-return]

    def transaction(self) -> AbstractContextManager[Any]:
        return self.connection.transaction()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.connection.close()


def connect_options(url: str) -> dict[str, Any]:
    """
    The connection parameters the server adds to C{url}'s: a bounded wait
    to connect and a name in C{pg_stat_activity}, where the URL gives none.
    """
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(url)
    options: dict[str, Any] = {}
    if "connect_timeout" not in given:
        options["connect_timeout"] = CONNECT_TIMEOUT
    if "application_name" not in given:
        options["application_name"] = APPLICATION_NAME
    return options


def one_line(error: BaseException) -> str:
    """
    What psycopg says went wrong, in one line: libpq's messages run over
    several ("connection failed: ...", then a hint).
    """
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return text or type(error).__name__


def open_postgres(url: str) -> Store:
    """
    Connect to the PostgreSQL database at C{url}, make or migrate its
    schema, and return a store on that one connection. Raises
    L{DatabaseError} with a one-line reason (the URL without its password)
    if it cannot serve: unreachable, refused, a newer schema.
    """
    import psycopg

    where = redacted(url)
    try:
        connection = psycopg.connect(url, autocommit=True, **connect_options(url))
    except psycopg.Error as e:
        raise DatabaseError(f"cannot connect to {where}: {one_line(e)}") from None
    store = Store(PostgresConnection(connection), where, POSTGRESQL)
    try:
        store.migrate()
    except psycopg.Error as e:
        connection.close()
        raise DatabaseError(f"cannot use {where}: {one_line(e)}") from None
    except BaseException:
        connection.close()
        raise
    return store


def connection_pool(url: str, reactor: Any) -> Any:
    """
    The server's pool of (one) connection to C{url}: see the module
    docstring. It starts when the reactor runs (at once if it does).
    """
    from twisted.enterprise import adbapi

    return adbapi.ConnectionPool(
        "psycopg",
        url,
        cp_min=1,
        cp_max=1,
        cp_reconnect=True,
        cp_reactor=reactor,
        **connect_options(url),
    )


def in_pool(pool: Any, where: str) -> Callable[[Callable[[Store], T]], Any]:
    """
    How to run a store function on C{pool}: C{f(store)} in the pool's
    thread, the store around the connection it lends, in one transaction
    (committed when C{f} returns, rolled back if it raises); a Deferred of
    what C{f} returns.
    """

    def run(f: Callable[[Store], T]) -> Any:
        return pool.runWithConnection(
            lambda connection: f(
                Store(PostgresConnection(connection), where, POSTGRESQL)
            )
        )

    return run


def reset_sequences(store: Store) -> None:
    """
    After rows were copied in with their ids (C{chat-migrate-db}), start
    each table's id sequence after the highest id, so that the next row
    inserted takes the next id.
    """
    for table, column in (("history", "id"), ("audit", "id"), ("server_bans", "seq")):
        store.connection.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
            f" coalesce(max({column}), 0) + 1, false) FROM {table}"
        )
