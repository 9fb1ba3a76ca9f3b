"""
C{--operators-file}: read at start (a bad file stops the server with one
line), re-read on SIGHUP (a bad file is logged and the old list kept), and
an operator the new list leaves out loses the status at once.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.trial import unittest

from chatservice.core.accounts import Account, Accounts
from chatservice.core.server_operators import ServerOperators
from chatservice.server.operators_file import (
    MAX_BYTES,
    OperatorsFileError,
    read_operators,
)
from chatservice.server.service import ChatService
from tests.core.test_accounts import HASHER, PASSWORD, Hashing, Saves
from tests.server.test_options import parse
from tests.server.test_shutdown import errors
from tests.support.helpers import capture_events, deferred_test, make_temp_dir
from tests.support.memory import Harness


def write(testcase: unittest.SynchronousTestCase, data: bytes) -> str:
    path = make_temp_dir(testcase) / "operators.txt"
    path.write_bytes(data)
    return str(path)


class ReadTests(unittest.SynchronousTestCase):
    def test_read(self) -> None:
        """Names one a line; comments and blank lines are left out."""
        path = write(
            self, b"# our operators\nBoss\n\n  chief  # since May\n\xc3\xa9lodie\n"
        )
        self.assertEqual(read_operators(path), ["Boss", "chief", "élodie"])

    def test_bad(self) -> None:
        for data, why in [
            (b"boss\nnot valid\n", "line 2"),
            (b"\xff\xfe", "not UTF-8"),
            (b"x" * (MAX_BYTES + 1), f"over {MAX_BYTES} bytes"),
        ]:
            path = write(self, data)
            e = self.assertRaises(OperatorsFileError, read_operators, path)
            self.assertIn(why, str(e))
        e = self.assertRaises(OperatorsFileError, read_operators, path + ".missing")
        self.assertIn("cannot read", str(e))

    def test_option(self) -> None:
        path = write(self, b"boss\n")
        options = parse("--operators-file", path, "--operator", "chief")
        self.assertEqual(options["operators-listed"], ["boss"])
        self.assertEqual(options["operator"], ["chief"])
        self.assertEqual(parse()["operators-listed"], [])

    def test_optionMissing(self) -> None:
        """A missing file at start is one fatal line naming the option."""
        path = str(Path(make_temp_dir(self)) / "nope.txt")
        error = self.assertRaises(SystemExit, parse, "--operators-file", path)
        self.assertEqual(
            str(error.code),
            f"twistd chat: --operators-file: cannot read {path}: "
            "No such file or directory",
        )


class ReloadTests(unittest.TestCase):
    def setUp(self) -> None:
        self.events = capture_events(self)
        self.path = Path(write(self, b"chief\n"))
        self.harness = Harness()
        chat = self.harness.chat
        self.accounts = Accounts(
            chat, in_thread=Hashing(), save=Saves(), clock=lambda: 0.0, hasher=HASHER
        )
        for nick in ("Boss", "Chief"):
            self.accounts.accounts[nick.lower()] = Account(nick, HASHER.hash(PASSWORD))
        self.operators = ServerOperators(
            chat, self.accounts, ["boss"], read_operators(str(self.path))
        )
        self.service = ChatService(
            chat=chat, operators=self.operators, operators_path=str(self.path)
        )
        (self.client,) = self.harness.clients(1)
        member = self.client.proto.member
        assert member is not None
        self.member = member
        self.successResultOf(
            Deferred.fromCoroutine(self.operators.oper(member, "chief", PASSWORD))
        )
        self.harness.turn()
        self.client.take()

    @deferred_test
    async def test_removed(self) -> None:
        """An operator the file no longer names is one no more, and is told."""
        self.path.write_text("# nobody but the command line's\n")
        await self.service.reload()
        self.harness.turn()
        self.assertFalse(self.operators.is_operator(self.member))
        self.assertEqual(self.operators.named, frozenset({"boss"}))
        self.assertEqual(
            self.client.take(), ["*** You are no longer a server operator."]
        )

    @deferred_test
    async def test_added(self) -> None:
        self.path.write_text("chief\nnewcomer\n")
        await self.service.reload()
        self.assertEqual(self.operators.named, frozenset({"boss", "chief", "newcomer"}))
        self.assertTrue(self.operators.is_operator(self.member))

    @deferred_test
    async def test_badKeepsOld(self) -> None:
        """A file that cannot be read is logged, and the old list stays."""
        self.path.write_text("not valid\n")
        await self.service.reload()
        self.assertEqual(self.operators.named, frozenset({"boss", "chief"}))
        self.assertTrue(self.operators.is_operator(self.member))
        [error] = errors(self.events)
        self.assertIn("the old list stays", error["log_format"])
        self.assertIn("line 1", error["error"])
        self.path.unlink()
        await self.service.reload()
        self.assertEqual(self.operators.named, frozenset({"boss", "chief"}))
