"""
The installed C{twistd -n chat --database postgresql://...}, used as a user
would: accounts and history kept in PostgreSQL across a restart, and two
server processes sharing one database.
"""

from __future__ import annotations

import re

from twisted.trial import unittest

from chatservice.storage.postgres import open_postgres
from tests.core.test_accounts import PASSWORD, logged_in, refused_as_registered
from tests.storage.helpers import STAMPED
from tests.support.helpers import ServerProcess, SocketClient
from tests.support.postgres import fresh_url, proxied_url

TEXT = "hello from PostgreSQL: 'quotes' %s ? 日本語 😀"


def lines(*texts: str) -> list[bytes]:
    return [text.encode() + b"\r\n" for text in texts]


class PostgresServerTests(unittest.TestCase):
    def start(self, url: str) -> tuple[ServerProcess, int]:
        server = ServerProcess(self, options=["--database", url, "--flood-rate", "0"])
        assert server.tcp_port is not None
        return server, server.tcp_port

    def stop(self, server: ServerProcess) -> bytes:
        output = server.output + server.stop()
        self.assertEqual(server.process.returncode, 0, output)
        self.assertIn(b"Server Shut Down.", output)
        self.assertNotIn(b"Traceback", output)
        return output

    def named(self, port: int, nick: str) -> SocketClient:
        client = SocketClient(self, port)
        client.welcome()
        client.send(f"/nick {nick}\n".encode())
        self.assertEqual(
            client.read_line(), f"*** You are now known as {nick}.\r\n".encode()
        )
        return client

    def test_restart(self) -> None:
        """
        An account registered and a line said on a server on PostgreSQL are
        there when it starts again: the line replayed, the account's name
        protected and its password taken.
        """
        url = fresh_url(self)
        server, port = self.start(url)
        server.logged(re.compile(rb"Using database postgresql://chat@/chat\?host="))
        alice = SocketClient(self, port)
        alice.welcome()
        alice.send(b"/nick alice\n")
        self.assertEqual(alice.read_line(), b"*** You are now known as alice.\r\n")
        alice.send(f"/register {PASSWORD}\n".encode())
        self.assertEqual(
            alice.read_line(),
            b"*** alice is registered to you, and you are logged in.\r\n",
        )
        alice.send(TEXT.encode() + b"\n/topic kept in PostgreSQL\n")
        alice.read_until(lambda line: b"kept in PostgreSQL" in line)
        output = self.stop(server)
        self.assertNotIn(PASSWORD.encode(), output)

        store = open_postgres(url)
        self.addCleanup(store.close)
        self.assertEqual(
            store.connection.execute(
                "SELECT sender, kind, text FROM messages", ()
            ).fetchall(),
            [("alice", "message", TEXT)],
        )
        (stored,) = store.connection.execute(
            "SELECT password_hash FROM accounts WHERE nick_key = 'alice'", ()
        ).fetchone()
        self.assertTrue(stored.startswith("$argon2id$"))

        server, port = self.start(url)
        client = SocketClient(self, port)
        client.welcome()
        self.assertTrue(
            client.read_line().startswith(
                b"*** Topic of lobby: kept in PostgreSQL (set by alice at "
            )
        )
        self.assertEqual(client.read_line(), b"*** Last 1 line(s) of lobby:\r\n")
        replayed = STAMPED.match(client.read_line())
        assert replayed is not None
        self.assertEqual(
            (replayed["nick"], replayed["text"]), (b"alice", TEXT.encode())
        )
        self.assertEqual(client.read_line(), b"*** End of history of lobby.\r\n")
        client.send(b"/nick alice\n")
        self.assertEqual(
            client.read_line(), refused_as_registered("alice").encode() + b"\r\n"
        )
        client.send(f"/login alice {PASSWORD}\n".encode())
        self.assertEqual(
            [client.read_line(), client.read_line()], lines(*logged_in("alice"))
        )
        self.stop(server)

    def test_twoServersOneDatabase(self) -> None:
        """
        Two server processes on one database: an account registered on one
        logs in on the other, which started before it existed; the name
        cannot be registered twice.
        """
        url = fresh_url(self)
        first, first_port = self.start(url)
        second, second_port = self.start(url)
        bob = self.named(first_port, "bob")
        bob.send(f"/register {PASSWORD}\n".encode())
        self.assertEqual(
            bob.read_line(), b"*** bob is registered to you, and you are logged in.\r\n"
        )
        elsewhere = self.named(second_port, "bob")
        elsewhere.send(f"/register {PASSWORD}\n".encode())
        self.assertEqual(elsewhere.read_line(), b"!!! bob is registered already.\r\n")
        other = SocketClient(self, second_port)
        other.welcome()
        other.send(f"/login bob {PASSWORD}\n".encode())
        # The guest who held the name here is renamed; the login goes on.
        self.assertEqual(
            other.read_until(lambda line: line.startswith(b"*** You are logged in")),
            b"*** You are logged in as bob.\r\n",
        )
        self.stop(first)
        self.stop(second)

    def test_postgresDownAndBack(self) -> None:
        """
        PostgreSQL goes away (every connection cut, new ones refused) and
        comes back: the chat goes on meanwhile, registering says why it
        cannot, and every line said is in PostgreSQL after the stop.
        """
        url, proxy = proxied_url(self)
        server, port = self.start(url)
        alice = self.named(port, "alice")
        bob = self.named(port, "bob")
        alice.send(b"before\n")
        bob.read_until(lambda line: line == b"[lobby] <alice> before\r\n")
        proxy.down()
        alice.send(b"while down\n")
        bob.read_until(lambda line: line == b"[lobby] <alice> while down\r\n")
        server.logged(re.compile(rb"history lines failed; they will be tried again"))
        bob.send(f"/register {PASSWORD}\n".encode())
        self.assertEqual(
            bob.read_until(lambda line: line.startswith(b"!!! ")),
            b"!!! Registering is not possible now: the account database cannot "
            b"be reached. Try again later.\r\n",
        )
        proxy.restore()
        alice.send(b"after\n")
        bob.read_until(lambda line: line == b"[lobby] <alice> after\r\n")
        output = server.output + server.stop()
        self.assertIn(b"Server Shut Down.", output)
        self.assertNotIn(b"could not be written", output)
        store = open_postgres(url)
        self.addCleanup(store.close)
        self.assertEqual(
            store.connection.execute(
                "SELECT text FROM messages ORDER BY chunk, line", ()
            ).fetchall(),
            [("before",), ("while down",), ("after",)],
        )
