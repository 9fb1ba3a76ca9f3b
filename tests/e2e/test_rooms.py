"""
Registered rooms over a restart of the installed server: C{twistd -n chat}
on a database file, stopped and started again, reached with raw sockets as
nc and telnet users reach it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from twisted.trial import unittest

from chatservice.core.events import Ban
from chatservice.core.moderation import RoomRecord
from chatservice.storage.store import open_store
from tests.support.helpers import ServerProcess, SocketClient, make_temp_dir

PASSWORD = "correct-horse-battery"


def expect(client: SocketClient, *fragments: str) -> bytes:
    """
    Skip to the line holding every one of C{fragments}, which must come.
    """
    wanted = [fragment.encode() for fragment in fragments]
    return client.read_until(lambda line: all(w in line for w in wanted))


def stored_rooms(path: Path) -> list[tuple[str, str, str, list[str], str]]:
    """(key, name, founder, op accounts, bans) of each row of the file."""
    store = open_store(str(path))
    try:
        return [
            (key, name, founder, json.loads(ops), bans)
            for key, name, founder, ops, bans in store.connection.execute(
                "SELECT key, name, founder, op_accounts, bans FROM rooms ORDER BY key"
            )
        ]
    finally:
        store.close()


class RegisteredRoomRestartTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.path = make_temp_dir(self) / "chat.sqlite3"

    def server(self) -> ServerProcess:
        return ServerProcess(self, options=["--database", str(self.path)])

    def client(self, server: ServerProcess, nick: str) -> SocketClient:
        assert server.tcp_port is not None
        client = SocketClient(self, server.tcp_port)
        client.welcome()
        client.send(f"/nick {nick}\n".encode())
        expect(client, f"You are now known as {nick}.")
        return client

    def register(self, client: SocketClient) -> None:
        client.send(f"/register {PASSWORD}\n".encode())
        expect(client, "registered to you")

    def stop(self, server: ServerProcess) -> None:
        output = server.stop()
        self.assertNotIn(b"Traceback", server.output + output)

    def test_storedRoomLoadedAndChangesWritten(self) -> None:
        """
        A registered room in the file is the server's at start: nobody is
        its operator by entering it empty, its founder is on entering
        (under another nickname at first), its settings are its own (here
        the topic open to everyone); an operator the founder makes is
        written to the file, the rest of the room with it.

        (The room is put in the file with the store, between two runs, so
        that this checks what is read, not only what this build wrote;
        L{test_registeredOverTheLineProtocol} goes through the commands.)
        """
        server = self.server()
        self.register(self.client(server, "alice"))
        self.register(self.client(server, "bob"))
        self.stop(server)
        store = open_store(str(self.path))
        store.save_room(
            RoomRecord(
                "python",
                "Python",
                "alice",
                topic_locked=False,
                bans=(Ban("mallory!*@*", "alice", time.time(), None, "spam"),),
                op_accounts=frozenset({"alice"}),
            )
        )
        store.close()

        server = self.server()
        bob = self.client(server, "bob2")
        bob.send(f"/login bob {PASSWORD}\n/join python\n".encode())
        # The room keeps the spelling it was registered with.
        expect(bob, "Now talking in Python")
        bob.send("/topic Tout sur Python 🐍\n".encode())
        expect(bob, "bob set the topic: Tout sur Python 🐍")
        alice = self.client(server, "alicia")
        alice.send(b"/join python\n")
        expect(alice, "Now talking in Python")
        alice.send(f"/login alice {PASSWORD}\n/part python\n/join python\n".encode())
        expect(alice, "Now talking in Python")
        alice.send(b"/who\n")
        who = expect(alice, "@alice")
        self.assertNotIn(b"@bob", who)
        alice.send(b"/op bob\n")
        expect(bob, "alice made bob an operator")
        self.stop(server)

        [(key, _, founder, ops, bans)] = stored_rooms(self.path)
        self.assertEqual((key, founder), ("python", "alice"))
        self.assertEqual(ops, ["alice", "bob"])
        self.assertIn("mallory!*@*", bans)

    def test_registeredOverTheLineProtocol(self) -> None:
        """
        A logged-in user registers a room, makes it moderated and bans
        mallory; after a restart the room is still moderated, mallory still
        kept out, and the founder, under another nickname, is its operator.
        """
        server = self.server()
        alice = self.client(server, "alice")
        self.register(alice)
        alice.send(b"/join Python\n")
        expect(alice, "Now talking in Python")
        alice.send(b"/room register\n")
        expect(alice, "registered the room")
        alice.send(b"/room set moderated on\n")
        expect(alice, "moderated")
        alice.send(b"/ban mallory spamming\n")
        expect(alice, "mallory")
        self.stop(server)

        server = self.server()
        mallory = self.client(server, "mallory")
        mallory.send(b"/join python\n")
        expect(mallory, "anned")
        bob = self.client(server, "bob")
        bob.send(b"/join python\n")
        expect(bob, "Now talking in Python")
        bob.send(b"hello\n")
        expect(bob, "moderated")
        ally = self.client(server, "ally")
        ally.send(f"/login alice {PASSWORD}\n/join python\n".encode())
        expect(ally, "Now talking in Python")
        ally.send(b"/who\n")
        expect(ally, "@alice")
        self.stop(server)
        [(key, _, founder, ops, bans)] = stored_rooms(self.path)
        self.assertEqual((key, founder, ops), ("python", "alice", ["alice"]))
        self.assertIn("mallory!*@*", bans)
