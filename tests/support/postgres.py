"""
A PostgreSQL database of a test's own, on the test PostgreSQL of
L{tests.support.services}, and a way to take it down and up again.

Each test gets a new schema, C{t_<random>}, dropped with everything in it
when the test ends: cheaper than a database per test (no copy of
C{template1}), and just as separate, since the URL L{fresh_url} returns
puts it first on the C{search_path} of every connection made with it, the
server's own included. The URL also names the schema in
C{application_name}, so that L{terminate} can end exactly the test's
connections, as a PostgreSQL restart would.

The test PostgreSQL is shared by every test and cannot be stopped. A
L{PostgresProxy} stands in front of it instead: a TCP port whose
connections it forwards to PostgreSQL's socket, until the test takes it
L{PostgresProxy.down} (every connection cut, new ones closed at once, as a
stopped server's would be) and L{PostgresProxy.restore}s it. It runs on
threads of its own, not the reactor: the server connects synchronously as
it starts, on the reactor thread.
"""

from __future__ import annotations

import secrets
import select
import socket
import threading
from typing import Any
from urllib.parse import quote

from twisted.trial.unittest import SynchronousTestCase

from tests.support.helpers import make_temp_dir
from tests.support.services import postgres_url


def admin(testcase: SynchronousTestCase) -> Any:
    """An autocommit connection to the test database, closed in cleanup."""
    import psycopg

    connection = psycopg.connect(postgres_url(testcase), autocommit=True)
    testcase.addCleanup(connection.close)
    return connection


def _server(testcase: SynchronousTestCase) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    return {k: str(v) for k, v in conninfo_to_dict(postgres_url(testcase)).items()}


def _schema(testcase: SynchronousTestCase) -> str:
    """A new empty schema on the test database, dropped in cleanup."""
    import psycopg

    base = postgres_url(testcase)
    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {name}")

    def drop() -> None:
        with psycopg.connect(base, autocommit=True) as connection:
            # Whatever of the test's is still connected (a server that did
            # not stop) must not hold the schema's locks.
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            connection.execute(f"DROP SCHEMA {name} CASCADE")

    testcase.addCleanup(drop)
    return name


def _url(server: dict[str, str], schema: str, host: str, port: str) -> str:
    options = quote(f"-c search_path={schema}", safe="")
    return (
        f"postgresql://{server.get('user', 'chat')}@/{server.get('dbname', 'chat')}"
        f"?host={quote(host, safe='/')}&port={port}"
        f"&options={options}&application_name={schema}"
    )


def fresh_url(testcase: SynchronousTestCase) -> str:
    """
    The libpq URL of an empty schema of the test's own on the test
    PostgreSQL, dropped in cleanup (skips, or fails in CI, without one).
    """
    server = _server(testcase)
    return _url(server, _schema(testcase), server["host"], server["port"])


def terminate(testcase: SynchronousTestCase, url: str) -> int:
    """
    End every connection made with C{url} (from L{fresh_url}), as a
    PostgreSQL restart would; return how many there were.
    """
    name = url.rsplit("application_name=", 1)[1]
    cursor = admin(testcase).execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = %s",
        (name,),
    )
    return int(cursor.fetchone()[0])


def dead_url(testcase: SynchronousTestCase) -> str:
    """
    A libpq URL where no PostgreSQL listens: a socket directory of the
    test's own, with no socket in it, so that connecting fails at once.
    Needs no PostgreSQL.
    """
    directory = make_temp_dir(testcase)
    return f"postgresql://chat@/chat?host={quote(str(directory), safe='/')}&port=5432"


class PostgresProxy:
    """
    A TCP port on 127.0.0.1 that forwards each connection to the UNIX
    socket at C{path}, while it is up. See the module docstring.

    @ivar port: the port number.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.up = True
        self.connections = 0
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.path)
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._live.update((client, upstream))
                self.connections += 1
            threading.Thread(
                target=self._pump, args=(client, upstream), daemon=True
            ).start()

    def _pump(self, one: socket.socket, other: socket.socket) -> None:
        try:
            while True:
                readable, _, _ = select.select([one, other], [], [])
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (other if source is one else one).sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._live.difference_update((one, other))
            one.close()
            other.close()

    def down(self) -> None:
        """Cut every connection, and close new ones at once."""
        self.up = False
        with self._lock:
            live = list(self._live)
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restore(self) -> None:
        """Forward new connections again."""
        self.up = True

    def close(self) -> None:
        self.down()
        try:
            # Wakes the accepting thread, which close() alone would not.
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()


def proxied_url(testcase: SynchronousTestCase) -> tuple[str, PostgresProxy]:
    """
    The URL of an empty schema of the test's own (as L{fresh_url}'s),
    reached through a L{PostgresProxy} the test can take down; both go
    in cleanup.
    """
    server = _server(testcase)
    schema = _schema(testcase)
    proxy = PostgresProxy(f"{server['host']}/.s.PGSQL.{server['port']}")
    testcase.addCleanup(proxy.close)
    return _url(server, schema, "127.0.0.1", str(proxy.port)), proxy
