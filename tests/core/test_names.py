"""
Tests for L{chatservice.core.names}.
"""

from twisted.trial.unittest import SynchronousTestCase

from chatservice.core import names


class NicknameTests(SynchronousTestCase):
    def test_plain(self) -> None:
        self.assertEqual(names.nickname("alice_2-b"), "alice_2-b")

    def test_unicode_letters(self) -> None:
        self.assertEqual(names.nickname("Zoë"), "Zoë")
        self.assertEqual(names.nickname("日本"), "日本")

    def test_fullwidth_is_normalized(self) -> None:
        """
        Compatibility forms become their plain form for display, too.
        """
        self.assertEqual(names.nickname("\uff41\uff4c\uff49\uff43\uff45"), "alice")

    def test_fold_is_case_insensitive(self) -> None:
        self.assertEqual(names.fold("Alice"), names.fold("ALICE"))
        self.assertEqual(names.fold("Straße"), names.fold("STRASSE"))
        self.assertEqual(names.fold("\uff21lice"), names.fold("alice"))

    def test_empty(self) -> None:
        self.assertRaises(names.InvalidName, names.nickname, "")

    def test_too_long(self) -> None:
        names.nickname("a" * names.NICK_MAX)
        e = self.assertRaises(names.InvalidName, names.nickname, "a" * 25)
        self.assertIn("at most 24", str(e))

    def test_bad_characters(self) -> None:
        for bad in ["a b", "a\tb", "a\x1bb", "a.b", "a\u200db", "a\u202eb", "<a>"]:
            with self.subTest(bad=bad):
                self.assertRaises(names.InvalidName, names.nickname, bad)

    def test_must_start_with_letter_or_underscore(self) -> None:
        names.nickname("_x")
        self.assertRaises(names.InvalidName, names.nickname, "1x")
        self.assertRaises(names.InvalidName, names.nickname, "-x")

    def test_combining_marks(self) -> None:
        """
        A mark or two after a letter is fine; a leading mark or a stack of
        them is not.
        """
        # No precomposed form exists for x with these, so NFKC keeps them.
        self.assertEqual(names.nickname("x\u0323\u0301"), "x\u0323\u0301")
        self.assertRaises(names.InvalidName, names.nickname, "\u0301x")
        self.assertRaises(names.InvalidName, names.nickname, "x" + "\u0301" * 3)

    def test_invisible_letters_and_marks(self) -> None:
        """
        Characters that show as nothing would make two names look alike.
        """
        for bad in ["alice\u3164", "\u3164", "x\ufe0f", "x\u034f", "a\U000e0100"]:
            with self.subTest(bad=bad):
                e = self.assertRaises(names.InvalidName, names.nickname, bad)
                self.assertIn("invisible", str(e))

    def test_reserved_in_any_case(self) -> None:
        for reserved in ["server", "SERVER", "\uff33erver", "NickServ"]:
            with self.subTest(reserved=reserved):
                e = self.assertRaises(names.InvalidName, names.nickname, reserved)
                self.assertIn("reserved", str(e))


class RoomNameTests(SynchronousTestCase):
    def test_hash_prefix_dropped(self) -> None:
        self.assertEqual(names.room_name("#python"), "python")

    def test_too_long(self) -> None:
        names.room_name("r" * names.ROOM_MAX)
        self.assertRaises(names.InvalidName, names.room_name, "r" * 33)

    def test_invalid(self) -> None:
        for bad in ["", "#", "a room", "x/y"]:
            with self.subTest(bad=bad):
                self.assertRaises(names.InvalidName, names.room_name, bad)
