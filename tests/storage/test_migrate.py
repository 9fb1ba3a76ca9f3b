"""
Tests for C{chat-migrate-db} (L{chatservice.storage.migrate}): a SQLite
database made by the server's own code, copied into PostgreSQL, reads back
the same, row for row and as the server loads it.
"""

from __future__ import annotations

import io
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from twisted.trial import unittest

from chatservice.core.audit import KEEP
from chatservice.core.server_bans import ServerBan
from chatservice.server import tap
from chatservice.server.options import Options
from chatservice.storage.migrate import main
from chatservice.storage.postgres import open_postgres
from chatservice.storage.schema import CURRENT_TABLES
from chatservice.storage.store import open_store
from tests.core.test_chat import EventRenderer, EventSession
from tests.storage.helpers import T0, VERSION_2_ROWS, batch, said, version_2_file
from tests.support.helpers import BIN, deferred_test, make_temp_dir
from tests.support.postgres import dead_url, fresh_url


class Session(EventSession):
    def __init__(self, address: str = "192.0.2.1") -> None:
        super().__init__(EventRenderer())
        self.address = address


def service(database: str) -> tap.ChatService:
    options = Options()
    options.parseOptions(
        ["--database", database, "--port", "tcp:0:interface=127.0.0.1"]
    )
    made = tap.makeService(options)
    assert isinstance(made, tap.ChatService)
    return made


def run(*argv: str) -> tuple[int, str, str]:
    """C{chat-migrate-db ARGV}, in process: exit status, output, errors."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as e:
            code = int(e.code or 0)
    return code, out.getvalue(), err.getvalue()


def state(made: tap.ChatService) -> dict[str, Any]:
    """What a running server holds of what its database stores."""
    chat = made.chat
    assert chat is not None and chat.history is not None
    return {
        "history": {
            key: chat.history.recent(key, 1000) for key in ("lobby", "café", "python")
        },
        "topics": chat.history.topics,
        "accounts": dict(chat.registered),  # type: ignore[call-overload]
        "rooms": chat.room_records,
        "bans": chat.server_bans.entries(),
        "audit": chat.audit.recent(KEEP),
    }


class MigrateTests(unittest.TestCase):
    async def made_by_server(self) -> tuple[str, dict[str, Any]]:
        """
        A SQLite database as the server leaves it after a run in which
        people talked in three rooms (many chunks), set a topic, registered
        accounts and a room with bans, and a server operator set a server
        ban and was audited; and what that server held.
        """
        path = str(make_temp_dir(self) / "chat.sqlite3")
        made = service(path)
        database, chat = made.database, made.chat
        assert database is not None and chat is not None
        database.startService()
        alice = chat.connect(Session(), "alice", "alice")
        bob = chat.connect(Session(), "bob")
        lobby = chat.join(alice, "lobby")
        cafe = chat.join(alice, "Café")
        chat.join(bob, "café")
        for turn in range(30):
            chat.say(alice, lobby, f'turn {turn}: it\'s 100% "quoted" ? %s')
            chat.act(bob, cafe, f"waves {turn} 日本語 😀")
            chat.flush()
            await database.write_all()
        chat.say(bob, chat.join(bob, "python"), "only line")
        chat.set_topic(alice, cafe, "Tout sur le café ☕")
        chat.register_room(alice, cafe)
        chat.add_mask(alice, cafe, "ban", "mallory", reason="spam")
        chat.add_mask(alice, cafe, "quiet", "$a:carol", duration=3600)
        chat.server_bans.add(ServerBan("*!*@10.0.0.0/8", "boss", T0, None, "x"))
        chat.server_bans.add(ServerBan("*!*@192.0.2.9", "boss", T0, None, "y"))
        chat.audit.record("boss", "kill", "mallory", detail="flood")
        chat.audit.record("alice", "ban", "mallory", room="Café")
        for nick in ("alice", "Bob", "名前"):
            await database.save_account(
                nick.casefold(), nick, f"$argon2id${nick}", T0, True
            )
        chat.flush()
        await database.stopService()
        # What the next server to start on the file holds.
        again = service(path)
        assert again.database is not None
        again.database.startService()
        held = state(again)
        await again.database.stopService()
        return path, held

    @deferred_test
    async def test_copiesEverything(self) -> None:
        """
        Every table, row for row (history's ids and bytes included), and
        the messages view line for line; a server started on PostgreSQL
        holds what one started on the file held; new rows take new ids.
        """
        path, held = await self.made_by_server()
        self.assertEqual(len(held["history"]["lobby"]), 30)
        self.assertEqual(len(held["history"]["café"]), 30)
        self.assertEqual(sorted(held["accounts"]), ["alice", "bob", "名前"])
        self.assertEqual(list(held["rooms"]), ["café"])
        self.assertEqual(held["topics"]["café"].text, "Tout sur le café ☕")
        url = fresh_url(self)
        code, out, err = run(path, url)
        self.assertEqual((code, err), (0, ""))
        sqlite = open_store(path)
        self.addCleanup(sqlite.close)
        pg = open_postgres(url)
        self.addCleanup(pg.close)
        (chunks,) = sqlite.connection.execute("SELECT count(*) FROM history").fetchone()
        self.assertGreater(chunks, 30)
        self.assertEqual(
            out.splitlines(),
            [
                f"Copied {path} to {url}:",
                f"  history: 61 lines in {chunks} chunks",
                "  accounts: 3",
                "  topics: 1",
                "  registered rooms: 1",
                "  server bans: 2",
                f"  audit entries: {len(held['audit'])}",
            ],
        )
        for table in CURRENT_TABLES:
            columns = ", ".join(
                row[1]
                for row in sqlite.connection.execute(f"PRAGMA table_info({table})")
            )
            query = f"SELECT {columns} FROM {table} ORDER BY {columns.split(',')[0]}"
            if table == "server_bans":
                query = f"SELECT {columns} FROM {table} ORDER BY at, " + "{order}"
            expected = sqlite.connection.execute(query.format(order="rowid")).fetchall()
            found = [
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                for row in pg.connection.execute(query.format(order="seq"), ())
            ]
            self.assertEqual(found, expected, table)
        view = "SELECT * FROM messages ORDER BY chunk, line"
        self.assertEqual(
            pg.connection.execute(view, ()).fetchall(),
            sqlite.connection.execute(view).fetchall(),
        )

        made = service(url)
        assert made.database is not None
        made.database.startService()
        self.addCleanup(made.database.stopService)
        self.assertEqual(state(made), held)
        pg.insert({"lobby": batch(T0, "lobby", [said("a", "new")])})
        pg.save_audit(held["audit"][0])
        (top,) = pg.connection.execute("SELECT max(id) FROM history", ()).fetchone()
        self.assertEqual(top, chunks + 1)
        (audit,) = pg.connection.execute("SELECT max(id) FROM audit", ()).fetchone()
        self.assertEqual(audit, len(held["audit"]) + 1)

    def test_oldFile(self) -> None:
        """A file of an earlier schema version is migrated first, then copied."""
        path = str(version_2_file(make_temp_dir(self) / "old.sqlite3"))
        url = fresh_url(self)
        code, out, _ = run(path, url)
        self.assertEqual(code, 0)
        self.assertIn("history: 9 lines in 3 chunks", out)
        pg = open_postgres(url)
        self.addCleanup(pg.close)
        self.assertEqual(
            pg.connection.execute(
                "SELECT * FROM messages ORDER BY chunk, line", ()
            ).fetchall(),
            VERSION_2_ROWS,
        )

    def test_notEmpty(self) -> None:
        """A target that holds anything is refused, and left as it was."""
        path = str(version_2_file(make_temp_dir(self) / "old.sqlite3"))
        url = fresh_url(self)
        pg = open_postgres(url)
        self.addCleanup(pg.close)
        pg.insert_account("zed", "zed", "h", T0)
        code, out, err = run(path, url)
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(
            err,
            f"chat-migrate-db: {url} is not empty (it holds accounts); "
            "chat-migrate-db copies only into an empty database\n",
        )
        self.assertEqual(
            pg.connection.execute("SELECT count(*) FROM history", ()).fetchone(),
            (0,),
        )
        self.assertEqual(run(path, fresh_url(self))[0], 0)

    def test_problems(self) -> None:
        """
        Nothing to copy from, nothing to copy to, a file a server holds:
        status 1 and one line; a bad command line: status 2.
        """
        directory = make_temp_dir(self)
        missing = str(directory / "missing.sqlite3")
        self.assertEqual(
            run(missing, "postgresql://chat@/chat"),
            (1, "", f"chat-migrate-db: {missing}: no such file\n"),
        )
        self.assertFalse(Path(missing).exists())
        path = str(version_2_file(directory / "old.sqlite3"))
        code, _, err = run(path, dead_url(self))
        self.assertEqual(code, 1)
        self.assertTrue(err.startswith("chat-migrate-db: cannot connect to "), err)
        held = open_store(path)
        code, _, err = run(path, "postgresql://chat@/chat")
        held.close()
        self.assertEqual(code, 1)
        self.assertIn("another chat server", err)
        self.assertEqual(
            run(path, "mysql://chat@db/chat"),
            (
                2,
                "",
                "chat-migrate-db: mysql://chat@db/chat is not a postgresql:// URL\n",
            ),
        )
        code, _, err = run(path)
        self.assertEqual(code, 2)
        self.assertIn("usage: chat-migrate-db", err)

    def test_installed(self) -> None:
        """The console script is installed, and says what it does."""
        result = subprocess.run(
            [str(BIN / "chat-migrate-db"), "--help"],
            capture_output=True,
            timeout=30,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(
            b"usage: chat-migrate-db [-h] SQLITE_PATH POSTGRESQL_URL", result.stdout
        )
