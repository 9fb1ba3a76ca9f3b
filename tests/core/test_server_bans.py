"""
Server ban masks and the ban list (L{chatservice.core.server_bans}).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chatservice.core import errors
from chatservice.core.masks import parse_mask
from chatservice.core.server_bans import (
    ServerBan,
    ServerBans,
    by_account,
    by_address,
    parse_server_mask,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ban(mask: str, expires: float | None = None, reason: str = "spam") -> ServerBan:
    return ServerBan(mask, "boss", 1000.0, expires, reason)


class ParseTests(SynchronousTestCase):
    def test_canonical(self) -> None:
        """Each way to write a mask has one canonical form."""
        for typed, canonical in [
            ("1.2.3.4", "*!*@1.2.3.4"),
            ("*@1.2.3.4", "*!*@1.2.3.4"),
            ("*!*@1.2.3.4", "*!*@1.2.3.4"),
            ("@1.2.3.4", "*!*@1.2.3.4"),
            ("10.1.2.3/8", "*!*@10.0.0.0/8"),
            ("10.1.2.3/32", "*!*@10.1.2.3"),
            ("2001:DB8::1", "*!*@2001:db8::1"),
            ("2001:db8::/32", "*!*@2001:db8::/32"),
            ("::ffff:1.2.3.4", "*!*@1.2.3.4"),
            ("*@10.0.*", "*!*@10.0.*"),
            ("$a:Bob", "$a:bob"),
            ("$A:ÉLODIE", "$a:élodie"),
            ("$a:spam*", "$a:spam*"),
        ]:
            self.assertEqual(parse_server_mask(typed).text, canonical, typed)

    def test_malformed(self) -> None:
        """Masks a server ban cannot use are refused, saying why."""
        for typed in [
            "",
            "   ",
            "bob",
            "bob!*@1.2.3.4",
            "user@1.2.3.4",
            "*@",
            "*@*",
            "*!*@*",
            "*@*.*",
            "0.0.0.0/0",
            "::/0",
            "$a:",
            "$a:*",
            "$a:a b",
            "*@10.0.0.0/33",
            "*@10.*/8",
            "*@evil.example.com",
            "*@*c*",
            "*!*@c*",
            "1.2.3.4" + "0" * 300,
        ]:
            e = self.assertRaises(errors.BadMask, parse_server_mask, typed)
            self.assertTrue(e.reason, typed)

    def test_matches(self) -> None:
        """The room bans' matcher, by address or by account only."""
        exact = parse_server_mask("1.2.3.4")
        self.assertTrue(exact.matches(by_address("1.2.3.4")))
        self.assertTrue(exact.matches(by_address("::ffff:1.2.3.4")))
        self.assertFalse(exact.matches(by_address("1.2.3.5")))
        self.assertFalse(exact.matches(by_account("1.2.3.4")))
        block = parse_server_mask("10.0.0.0/8")
        self.assertTrue(block.matches(by_address("10.200.0.1")))
        self.assertFalse(block.matches(by_address("11.0.0.1")))
        self.assertFalse(block.matches(by_address("")))
        glob = parse_server_mask("*@10.0.*")
        self.assertTrue(glob.matches(by_address("10.0.7.1")))
        self.assertFalse(glob.matches(by_address("10.1.7.1")))
        account = parse_server_mask("$a:élodie")
        self.assertTrue(account.matches(by_account("ÉLODIE")))
        self.assertFalse(account.matches(by_account(None)))
        self.assertFalse(account.matches(by_address("1.2.3.4")))
        wide = parse_server_mask("$a:spam?")
        self.assertTrue(wide.matches(by_account("SPAM1")))
        self.assertFalse(wide.matches(by_account("spam12")))

    def test_sameAsRoomMasks(self) -> None:
        """
        A server ban's mask is a room ban's (L{parse_mask}), so the two
        spell and match a mask alike.
        """
        for typed in ["*!*@10.0.0.0/8", "*@10.0.*", "$a:Bob"]:
            self.assertEqual(parse_server_mask(typed), parse_mask(typed), typed)


class ServerBansTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.saved: list[ServerBan] = []
        self.deleted: list[str] = []
        self.bans = ServerBans(
            self.clock, save=self.saved.append, delete=self.deleted.append, limit=3
        )

    def test_addressBans(self) -> None:
        self.bans.add(ban("*!*@1.2.3.4"))
        self.bans.add(ban("*!*@10.0.0.0/8"))
        self.assertEqual(self.bans.address_ban("1.2.3.4"), ban("*!*@1.2.3.4"))
        self.assertEqual(self.bans.address_ban("::ffff:1.2.3.4"), ban("*!*@1.2.3.4"))
        self.assertEqual(self.bans.address_ban("10.9.9.9"), ban("*!*@10.0.0.0/8"))
        self.assertIsNone(self.bans.address_ban("192.168.0.1"))
        self.assertIsNone(self.bans.address_ban(""))
        self.assertIsNone(self.bans.address_ban("/tmp/chat.sock"))
        self.assertIsNone(self.bans.account_ban("bob"))
        self.assertEqual(len(self.saved), 2)

    def test_accountBans(self) -> None:
        self.bans.add(ban("$a:bob"))
        self.bans.add(ban("$a:spam*"))
        self.assertEqual(self.bans.account_ban("BOB"), ban("$a:bob"))
        self.assertEqual(self.bans.account_ban("spammer"), ban("$a:spam*"))
        self.assertIsNone(self.bans.account_ban("alice"))
        self.assertIsNone(self.bans.account_ban(None))

    def test_notCanonical(self) -> None:
        self.assertRaises(errors.BadMask, self.bans.add, ban("1.2.3.4"))

    def test_expiry(self) -> None:
        """
        A ban stops matching when it expires, and is dropped then, from
        memory and from storage.
        """
        self.bans.add(ban("*!*@1.2.3.4", expires=1060.0))
        self.bans.add(ban("*!*@10.0.0.0/8", expires=1060.0))
        self.clock.now = 1059.9
        self.assertIsNotNone(self.bans.address_ban("1.2.3.4"))
        self.assertIsNotNone(self.bans.address_ban("10.0.0.1"))
        self.clock.now = 1060.0
        self.assertIsNone(self.bans.address_ban("1.2.3.4"))
        self.assertIsNone(self.bans.address_ban("10.0.0.1"))
        self.assertEqual(self.deleted, ["*!*@1.2.3.4", "*!*@10.0.0.0/8"])
        self.assertEqual(self.bans.entries(), [])

    def test_bounded(self) -> None:
        """
        A full list refuses a new mask, but takes a replacement of one it
        holds, and room an expired ban left.
        """
        for n in range(3):
            self.bans.add(ban(f"*!*@10.0.0.{n}", expires=2000.0 if n else None))
        e = self.assertRaises(errors.ServerBansFull, self.bans.add, ban("*!*@10.0.0.9"))
        self.assertEqual(e.limit, 3)
        self.bans.add(ban("*!*@10.0.0.1", reason="again"))
        self.assertEqual(len(self.bans), 3)
        self.clock.now = 2000.0
        self.bans.add(ban("*!*@10.0.0.9"))
        self.assertEqual(
            [b.mask for b in self.bans.entries()],
            ["*!*@10.0.0.0", "*!*@10.0.0.1", "*!*@10.0.0.9"],
        )

    def test_remove(self) -> None:
        self.bans.add(ban("*!*@1.2.3.4"))
        self.assertEqual(self.bans.remove("1.2.3.4"), ban("*!*@1.2.3.4"))
        self.assertEqual(self.deleted, ["*!*@1.2.3.4"])
        e = self.assertRaises(errors.NoSuchServerBan, self.bans.remove, "1.2.3.4")
        self.assertEqual(e.mask, "*!*@1.2.3.4")
        self.assertRaises(errors.BadMask, self.bans.remove, "nonsense")

    def test_load(self) -> None:
        """
        Stored bans are taken without being stored again; expired ones and
        ones whose mask is no longer read are left out.
        """
        self.bans.load(
            [ban("*!*@1.2.3.4"), ban("*!*@5.6.7.8", expires=999.0), ban("garbage")]
        )
        self.assertEqual(self.bans.entries(), [ban("*!*@1.2.3.4")])
        self.assertEqual(self.saved, [])
