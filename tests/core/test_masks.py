"""
Ban and mute masks: how what a moderator types is read, and whom it
matches.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatservice.core.masks import MASK_MAX, BadMask, Identity, MaskList, parse_mask


def who(
    nick: str = "bob",
    user: str = "bob",
    address: str = "10.0.0.7",
    account: str | None = None,
) -> Identity:
    return Identity(nick, user, address, account)


class ParseTests(SynchronousTestCase):
    def test_canonical(self) -> None:
        """
        Missing parts are C{*}; a bare word is a nickname; case is folded;
        so spellings of one mask are one.
        """
        cases = {
            "bob": "bob!*@*",
            "BOB!*@*": "bob!*@*",
            "*@10.0.0.7": "*!*@10.0.0.7",
            "bob!x": "bob!x@*",
            "bob@host": "bob!*@host",
            "$a:Alice": "$a:alice",
            "$A:alice": "$a:alice",
            "Ünïcödé": "ünïcödé!*@*",
        }
        for text, canonical in cases.items():
            self.assertEqual(parse_mask(text).text, canonical, text)

    def test_refused(self) -> None:
        """Malformed masks are refused with the reason."""
        for text in [
            "",
            "a b",
            "a,b",
            "a\x01b",
            "a!b!c",
            "a@b@c",
            "$a:",
            "$x:foo",
            "x" * (MASK_MAX + 1),
            "*!*@10.0.0.0/99",
        ]:
            self.assertRaises(BadMask, parse_mask, text)

    @given(st.text(max_size=300))
    def test_nothingElseRaises(self, text: str) -> None:
        """Any text is a mask or a L{BadMask}, and a mask matches safely."""
        try:
            mask = parse_mask(text)
        except BadMask:
            return
        self.assertIsInstance(mask.matches(who()), bool)
        self.assertEqual(parse_mask(mask.text).text, mask.text)


class MatchTests(SynchronousTestCase):
    def test_nickname(self) -> None:
        mask = parse_mask("B?b")
        self.assertTrue(mask.matches(who()))
        self.assertFalse(mask.matches(who(nick="bobby")))
        self.assertTrue(parse_mask("bob*").matches(who(nick="bobby")))

    def test_unicodeNickname(self) -> None:
        """Nicknames compare folded, as the chat folds them."""
        mask = parse_mask("ZOË")
        self.assertTrue(mask.matches(who(nick="zoë")))
        self.assertTrue(parse_mask("Straße").matches(who(nick="strasse")))

    def test_address(self) -> None:
        self.assertTrue(parse_mask("*@10.0.0.7").matches(who()))
        self.assertTrue(parse_mask("*@10.0.*").matches(who()))
        self.assertFalse(parse_mask("*@10.0.0.8").matches(who()))
        self.assertFalse(parse_mask("*@10.0.0.7").matches(who(address="")))

    def test_network(self) -> None:
        self.assertTrue(parse_mask("*@10.0.0.0/8").matches(who()))
        self.assertFalse(parse_mask("*@192.168.0.0/16").matches(who()))
        self.assertTrue(
            parse_mask("*@2001:db8::/32").matches(who(address="2001:db8::5"))
        )
        self.assertFalse(parse_mask("*@2001:db8::/32").matches(who()))
        self.assertTrue(
            parse_mask("*@10.0.0.0/8").matches(who(address="::ffff:10.1.2.3"))
        )

    def test_cloak(self) -> None:
        """A mask copied from what IRC shows (the cloak) matches."""
        self.assertTrue(parse_mask("bob!bob@chatservice").matches(who()))
        self.assertFalse(parse_mask("bob!bob@chatservice").matches(who(nick="al")))

    def test_user(self) -> None:
        self.assertTrue(parse_mask("*!~B*@*").matches(who(user="~bob")))
        self.assertFalse(parse_mask("*!x@*").matches(who()))

    def test_account(self) -> None:
        mask = parse_mask("$a:Alice")
        self.assertTrue(mask.matches(who(account="alice")))
        self.assertFalse(mask.matches(who(account="alicia")))
        self.assertFalse(mask.matches(who(nick="alice")))
        self.assertTrue(parse_mask("$a:ali*").matches(who(account="alicia")))


class MaskListTests(SynchronousTestCase):
    """
    A list files exact masks under what they name, and finds the same
    entries as trying every mask would.
    """

    def test_matchingAsEveryMask(self) -> None:
        texts = [
            "bob",
            "bo*",
            "*@10.0.0.7",
            "*@10.0.0.0/8",
            "*!*@chatservice",
            "$a:alice",
            "$a:al*",
            "x!y@z",
        ]
        entries: MaskList[int] = MaskList()
        for n, text in enumerate(texts):
            mask = parse_mask(text)
            entries[mask.text] = (mask, n)
        people = [
            who(),
            who(nick="bobby", address="10.1.1.1"),
            who(nick="al", address="", account="alice"),
            who(nick="zed", address="192.0.2.1", account="alicia"),
        ]
        for person in people:
            found = sorted(n for _, n in entries.matching(person))
            every = sorted(n for mask, n in entries.values() if mask.matches(person))
            self.assertEqual(found, every, person)
        self.assertEqual(len(entries), len(texts))

    def test_removeAndReplace(self) -> None:
        entries: MaskList[str] = MaskList()
        mask = parse_mask("bob")
        entries[mask.text] = (mask, "first")
        entries[mask.text] = (mask, "second")
        self.assertEqual([v for _, v in entries.matching(who())], ["second"])
        del entries[mask.text]
        self.assertEqual(list(entries.matching(who())), [])
        self.assertEqual(entries, {})
