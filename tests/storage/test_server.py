"""
The installed C{twistd chat} starting, refusing to start and restarting on
a database file.
"""

from __future__ import annotations

import calendar
import os
import re
import signal
import sqlite3
import subprocess
import time

from twisted.trial import unittest

from chatservice.core.history import ACTION, MESSAGE
from chatservice.storage.schema import SCHEMA_VERSION
from tests.storage.helpers import (
    STAMPED,
    VERSION_2_ROWS,
    in_order,
    read_file,
    version_2_file,
)
from tests.support.helpers import (
    TWISTD,
    ServerProcess,
    SocketClient,
    make_temp_dir,
    read_until,
)

MESSAGES = "SELECT * FROM messages"


def _lines(*lines: str) -> list[bytes]:
    return [line.encode() + b"\r\n" for line in lines]


# What the server of schema version 2 replayed from the file version_2_file
# makes: on connecting (lobby), then on /join Café.
VERSION_2_LOBBY_REPLAY = _lines(
    "*** Last 5 line(s) of lobby:",
    "[lobby] (2026-11-24 09:15:02) <alice> good morning",
    "[lobby] (2026-11-24 09:15:02) * bob waves",
    "[lobby] (2026-11-24 09:15:02) <alice> anyone seen carol?",
    "[lobby] (2026-11-24 10:15:02) <carol> > quoted reply",
    "[lobby] (2026-11-24 10:15:02) <carol>   leading spaces",
    "*** End of history of lobby.",
)
VERSION_2_CAFE_REPLAY = _lines(
    "*** Now talking in Café (1 member).",
    "*** Last 4 line(s) of Café:",
    "[Café] (2026-11-24 09:16:07) <名前> 日本語 😀 'quotes'",
    "[Café] (2026-11-24 09:16:07) <erin> [lobby] <mallory> fake ] and > too",
    "[Café] (2026-11-24 09:16:07) * frank waves > everyone ] loudly",
    "[Café] (2026-11-24 09:16:07) * dave ",
    "*** End of history of Café.",
)


def refused(testcase: unittest.SynchronousTestCase, database: str) -> str:
    """
    Start C{twistd -n chat --database DATABASE}, which must fail at once
    with one line saying why, naming the file, and no traceback; return
    that line.
    """
    cwd = make_temp_dir(testcase)
    started = time.monotonic()
    result = subprocess.run(
        [
            str(TWISTD),
            "-n",
            "chat",
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--database",
            database,
        ],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )
    elapsed = time.monotonic() - started
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    testcase.assertNotEqual(result.returncode, 0, output)
    testcase.assertLess(elapsed, 15, output)
    testcase.assertNotIn("Traceback", output)
    testcase.assertNotIn("listening on", output)
    lines = output.strip().splitlines()
    testcase.assertEqual(len(lines), 1, output)
    testcase.assertIn(database, lines[0])
    return lines[0]


def stop_cleanly(
    testcase: unittest.SynchronousTestCase, server: ServerProcess
) -> bytes:
    """
    SIGTERM C{server}, which must shut down in order and without a
    traceback, and return all it wrote. twistd ends by re-raising the
    signal that stopped it, so a clean stop exits by SIGTERM (or 0), after
    "Server Shut Down.".
    """
    output = server.output + server.stop()
    testcase.assertIn(server.process.returncode, (0, -signal.SIGTERM), output)
    testcase.assertIn(b"Server Shut Down.", output)
    testcase.assertNotIn(b"Traceback", output)
    return output


class StartupFailureTests(unittest.SynchronousTestCase):
    def test_missingDirectory(self) -> None:
        path = make_temp_dir(self) / "no-such-directory" / "chat.sqlite3"
        line = refused(self, str(path))
        self.assertIn("cannot open", line)
        self.assertFalse(path.parent.exists())

    def test_noPermission(self) -> None:
        """
        A place where even root may not create a file.
        """
        path = "/proc/chat-test.sqlite3"
        line = refused(self, path)
        self.assertIn("cannot open", line)
        self.assertFalse(os.path.exists(path))

    def test_notSQLite(self) -> None:
        path = make_temp_dir(self) / "notes.sqlite3"
        junk = (b"These are not the bytes of a SQLite database.\n" * 100)[:4096]
        path.write_bytes(junk)
        line = refused(self, str(path))
        self.assertIn("not a database", line)
        self.assertEqual(path.read_bytes(), junk)

    def test_newerSchema(self) -> None:
        path = make_temp_dir(self) / "future.sqlite3"
        db = sqlite3.connect(str(path))
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.close()
        line = refused(self, str(path))
        self.assertIn(f"schema version {SCHEMA_VERSION + 1}", line)
        self.assertEqual(
            read_file(path, "PRAGMA user_version"), [(SCHEMA_VERSION + 1,)]
        )

    def test_lockedByAnotherServer(self) -> None:
        path = make_temp_dir(self) / "chat.sqlite3"
        first = ServerProcess(self, options=["--database", str(path)])
        # The listener is logged before the database is opened for good.
        if b"Using database" not in first.output:
            assert first.process.stdout is not None
            read_until(first.process.stdout, re.compile(rb"Using database"))
        line = refused(self, str(path))
        self.assertIn("locked", line)
        self.assertIn("another chat server", line)
        # The first server is unharmed.
        assert first.tcp_port is not None
        client = SocketClient(self, first.tcp_port)
        client.welcome()
        client.send(b"/rooms\n")
        self.assertEqual(client.read_line(), b"*** 1 room(s):\r\n")
        stop_cleanly(self, first)


def read_replay(
    client: SocketClient, room: str, since: float
) -> list[tuple[str, str, str]]:
    """
    Read a replay block of C{room} from C{client}: (sender, kind, text) of
    each line, checking the framing and that each time is between C{since}
    and now.
    """
    header = client.read_line()
    match = re.fullmatch(rb"\*\*\* Last (\d+) line\(s\) of (.+):\r\n", header)
    assert match is not None, header
    assert match.group(2).decode() == room, header
    lines = []
    for _ in range(int(match.group(1))):
        line = client.read_line()
        stamped = STAMPED.match(line)
        assert stamped is not None, line
        assert stamped.group("room").decode() == room, line
        when = calendar.timegm(
            time.strptime(stamped.group("when").decode(), "%Y-%m-%d %H:%M:%S")
        )
        assert int(since) <= when <= time.time(), (line, since)
        if stamped.group("nick") is not None:
            lines.append((stamped.group("nick").decode(), MESSAGE, ""))
        else:
            lines.append((stamped.group("actor").decode(), ACTION, ""))
        lines[-1] = (*lines[-1][:2], stamped.group("text").decode())
    end = client.read_line()
    assert end == f"*** End of history of {room}.\r\n".encode(), end
    return lines


def expect(client: SocketClient, line: str) -> None:
    """
    Skip to C{line}, which must come.
    """
    client.read_until(lambda got: got == line.encode() + b"\r\n")


class RestartTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.path = make_temp_dir(self) / "chat.sqlite3"

    def server(self, *options: str) -> ServerProcess:
        return ServerProcess(self, options=["--database", str(self.path), *options])

    def stop(self, server: ServerProcess) -> bytes:
        return stop_cleanly(self, server)

    def test_historySurvivesRestart(self) -> None:
        since = time.time()
        server = self.server()
        assert server.tcp_port is not None
        alice = SocketClient(self, server.tcp_port)
        alice.welcome()
        bob = SocketClient(self, server.tcp_port)
        bob.welcome()
        alice.send(b"/nick alice\n")
        expect(alice, "*** You are now known as alice.")
        bob.send(b"/nick bob\n")
        expect(bob, "*** You are now known as bob.")
        alice.send(b"good morning\n")
        expect(bob, "[lobby] <alice> good morning")
        bob.send(b"/me waves\n")
        expect(alice, "[lobby] * bob waves")
        bob.send(b"/msg alice a secret\n")
        expect(alice, "*bob* a secret")
        alice.send(b"/join python\n")
        expect(alice, "*** Now talking in python (1 member).")
        bob.send(b"/join python\n")
        expect(alice, "[python] --> bob joined")
        alice.send(b"anyone seen carol?\n")
        expect(bob, "[python] <alice> anyone seen carol?")
        bob.send("日本語 😀 'quotes' > ]\n".encode())
        expect(alice, "[python] <bob> 日本語 😀 'quotes' > ]")
        alice.send(b"/part lobby\n")
        expect(alice, "*** You left lobby; now talking in python.")
        self.stop(server)

        again = self.server()
        assert again.tcp_port is not None
        carol = SocketClient(self, again.tcp_port)
        carol.welcome()
        self.assertEqual(
            read_replay(carol, "lobby", since),
            [("alice", MESSAGE, "good morning"), ("bob", ACTION, "waves")],
        )
        carol.send(b"/join python\n")
        expect(carol, "*** Now talking in python (1 member).")
        self.assertEqual(
            read_replay(carol, "python", since),
            [
                ("alice", MESSAGE, "anyone seen carol?"),
                ("bob", MESSAGE, "日本語 😀 'quotes' > ]"),
            ],
        )
        carol.send(b"/history 1\n")
        self.assertEqual(
            read_replay(carol, "python", since),
            [("bob", MESSAGE, "日本語 😀 'quotes' > ]")],
        )
        self.stop(again)

    def test_topicSurvivesRestart(self) -> None:
        """
        A topic set on the installed server is the room's topic after a
        restart, shown on entering the room before its history, and stored
        one row a room.
        """
        server = self.server()
        assert server.tcp_port is not None
        alice = SocketClient(self, server.tcp_port)
        alice.welcome()
        alice.send(b"/nick alice\n/join python\n")
        expect(alice, "*** Now talking in python (1 member).")
        alice.send("/topic Tout sur Python 🐍\nhello\n".encode())
        expect(alice, "[python] --- alice set the topic: Tout sur Python 🐍")
        alice.send(b"/topic\n")
        shown = alice.read_line()
        self.stop(server)
        self.assertEqual(
            [row[:4] for row in read_file(self.path, "SELECT * FROM topics")],
            [("python", "python", "Tout sur Python 🐍", "alice")],
        )

        again = self.server()
        assert again.tcp_port is not None
        bob = SocketClient(self, again.tcp_port)
        bob.welcome()
        bob.send(b"/join python\n")
        expect(bob, "*** Now talking in python (1 member).")
        self.assertEqual(bob.read_line(), shown)
        self.assertRegex(
            shown.decode(),
            r"^\*\*\* Topic of python: Tout sur Python 🐍 \(set by alice at "
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)\r\n$",
        )
        self.assertEqual(bob.read_line(), b"*** Last 1 line(s) of python:\r\n")
        self.stop(again)

    def test_versionTwoFile(self) -> None:
        """
        A file written by today's main (schema version 2) is migrated when
        the server starts; entering a room replays, byte for byte, what that
        server replayed; the messages view gives the same rows; and a
        restart after that migrates nothing and changes nothing.
        """
        version_2_file(self.path)
        self.assertEqual(read_file(self.path, MESSAGES), VERSION_2_ROWS)
        outputs = []
        histories = []
        for _ in range(2):
            server = self.server()
            assert server.tcp_port is not None
            client = SocketClient(self, server.tcp_port)
            client.welcome()
            self.assertEqual(
                [client.read_line() for _ in VERSION_2_LOBBY_REPLAY],
                VERSION_2_LOBBY_REPLAY,
            )
            client.send("/join Café\n".encode())
            self.assertEqual(
                [client.read_line() for _ in VERSION_2_CAFE_REPLAY],
                VERSION_2_CAFE_REPLAY,
            )
            outputs.append(self.stop(server))
            self.assertEqual(
                read_file(self.path, "PRAGMA user_version"), [(SCHEMA_VERSION,)]
            )
            self.assertEqual(read_file(self.path, MESSAGES), VERSION_2_ROWS)
            histories.append(read_file(self.path, "SELECT * FROM history"))
        first, second = outputs
        self.assertEqual(first.count(b"to schema version"), SCHEMA_VERSION - 2, first)
        for version in range(3, SCHEMA_VERSION + 1):
            self.assertIn(b"to schema version %d" % version, first)
        self.assertNotIn(b"Migrated", second)
        self.assertEqual(histories[0], histories[1])

    def test_burstAllWritten(self) -> None:
        """
        10,000 lines relayed just before a SIGTERM are all in the file, in
        order.
        """
        count = 10_000
        server = self.server("--flood-rate", "0")
        assert server.tcp_port is not None
        reader = SocketClient(self, server.tcp_port)
        reader.welcome()
        sender = SocketClient(self, server.tcp_port)
        nick = sender.welcome()
        expect(reader, f"[lobby] --> {nick} joined")
        texts = [f"burst {i:05d} 'q' 😀" for i in range(count)]
        step = 500
        for start in range(0, count, step):
            sender.send(
                b"".join(t.encode() + b"\n" for t in texts[start : start + step])
            )
            for text in texts[start : start + step]:
                self.assertEqual(
                    reader.read_line(), f"[lobby] <{nick}> {text}\r\n".encode()
                )
        self.stop(server)
        self.assertEqual(
            read_file(self.path, "SELECT sum(count) FROM history"), [(count,)]
        )
        self.assertEqual(
            in_order(
                read_file(
                    self.path,
                    "SELECT chunk, sender, kind, text FROM messages"
                    " WHERE room = 'lobby'",
                )
            ),
            [(nick, MESSAGE, text) for text in texts],
        )

    def test_noHistory(self) -> None:
        """
        --no-history: nothing replayed, nothing shown, nothing written; the
        database is still made, for accounts.
        """
        server = self.server("--no-history")
        assert server.tcp_port is not None
        a = SocketClient(self, server.tcp_port)
        a.welcome()
        b = SocketClient(self, server.tcp_port)
        b.welcome()
        a.send(b"not kept\n/me neither\n")
        expect(b, "[lobby] * guest1 neither")
        c = SocketClient(self, server.tcp_port)
        c.welcome()
        c.send(b"/history\n")
        self.assertEqual(c.read_line(), b"!!! This server keeps no history.\r\n")
        self.stop(server)
        self.assertEqual(read_file(self.path, "SELECT count(*) FROM history"), [(0,)])
        self.assertEqual(
            read_file(self.path, "PRAGMA user_version"), [(SCHEMA_VERSION,)]
        )

    def test_memoryLeavesNoFile(self) -> None:
        server = ServerProcess(self, options=["--database", ":memory:"])
        assert server.tcp_port is not None
        a = SocketClient(self, server.tcp_port)
        a.welcome()
        a.send(b"kept in memory\n/rooms\n")
        expect(a, "*** 1 room(s):")
        b = SocketClient(self, server.tcp_port)
        b.welcome()
        # History works while the server runs.
        self.assertEqual(
            read_replay(b, "lobby", time.time() - 60),
            [("guest1", MESSAGE, "kept in memory")],
        )
        self.stop(server)
        self.assertEqual(sorted(os.listdir(server.directory)), [])
