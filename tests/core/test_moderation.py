"""
Room moderation in the chat core: settings, bans, mutes, invitations and
registered rooms, seen as the events emitted and the typed errors raised.
"""

from __future__ import annotations

from chatservice.core import errors, events
from chatservice.core.durations import DURATION_MAX
from chatservice.core.moderation import LIST_MAX, RoomRecord
from chatservice.core.rooms import Member
from tests.core.test_operators import OperatorTestCase


class SettingTests(OperatorTestCase):
    def test_flags(self) -> None:
        """
        Each flag is set by an operator; the room is told of a change only.
        """
        for flag in ("invite_only", "moderated", "secret"):
            self.chat.set_setting(self.alice, self.room, flag, True)
            self.chat.set_setting(self.alice, self.room, flag, True)
            self.assertEqual(
                self.everyone(),
                [[events.SettingChanged("python", "alice", flag, True)]] * 3,
            )
            self.assertIs(getattr(self.room, flag), True)

    def test_keyAndLimit(self) -> None:
        self.chat.set_setting(self.alice, self.room, "key", "s3cret")
        self.chat.set_setting(self.alice, self.room, "limit", 10)
        self.chat.set_setting(self.alice, self.room, "key", None)
        self.assertEqual(
            self.take(self.bob),
            [
                events.SettingChanged("python", "alice", "key", "s3cret"),
                events.SettingChanged("python", "alice", "limit", 10),
                events.SettingChanged("python", "alice", "key", None),
            ],
        )
        self.assertEqual((self.room.key, self.room.limit), (None, 10))

    def test_badValues(self) -> None:
        """Values a setting does not take are refused, and nothing changes."""
        for setting, value in [
            ("key", ""),
            ("key", "two words"),
            ("key", "a,b"),
            ("key", "x" * 24),
            ("key", 5),
            ("limit", 0),
            ("limit", -3),
            ("limit", 10**9),
            ("limit", True),
            ("limit", "5"),
            ("moderated", "yes"),
            ("colour", True),
        ]:
            self.assertRaises(
                errors.BadSetting,
                self.chat.set_setting,
                self.alice,
                self.room,
                setting,  # type: ignore[arg-type]
                value,
            )
        self.assertEqual(self.everyone(), [[], [], []])

    def test_onlyOperators(self) -> None:
        for setting, value in [
            ("invite_only", True),
            ("key", "k"),
            ("limit", 2),
            ("moderated", True),
            ("no_external", False),
        ]:
            self.assertRaises(
                errors.NotOperator,
                self.chat.set_setting,
                self.bob,
                self.room,
                setting,  # type: ignore[arg-type]
                value,
            )
        self.assertEqual(
            (self.room.invite_only, self.room.key, self.room.limit),
            (False, None, None),
        )
        self.assertEqual(self.everyone(), [[], [], []])

    def test_settingsOf(self) -> None:
        """The key is shown to members only."""
        self.chat.set_setting(self.alice, self.room, "key", "k")
        dave = self.connect("dave")
        self.assertEqual(self.chat.settings_of(self.bob, self.room).key, "k")
        self.assertIsNone(self.chat.settings_of(dave, self.room).key)

    def test_audited(self) -> None:
        self.chat.set_setting(self.alice, self.room, "limit", 4)
        entry = self.chat.audit.recent(1)[0]
        self.assertEqual(
            (entry.actor, entry.action, entry.target, entry.room, entry.detail),
            ("alice", "set", "limit", "python", "4"),
        )


class EntryTests(OperatorTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.dave = self.connect("dave")

    def test_key(self) -> None:
        self.chat.set_setting(self.alice, self.room, "key", "k")
        self.assertRaises(errors.BadKey, self.chat.join, self.dave, "python")
        self.assertRaises(errors.BadKey, self.chat.join, self.dave, "python", key="K")
        self.chat.join(self.dave, "python", key="k")
        self.assertIn(self.dave, self.room.members)

    def test_limit(self) -> None:
        self.chat.set_setting(self.alice, self.room, "limit", 3)
        self.assertRaises(errors.RoomFull, self.chat.join, self.dave, "python")
        self.chat.part(self.carol, self.room)
        self.chat.join(self.dave, "python")

    def test_inviteOnly(self) -> None:
        """
        An invitation lets one in once; a refused joiner leaves nothing
        behind.
        """
        self.chat.set_setting(self.alice, self.room, "invite_only", True)
        self.assertRaises(errors.InviteOnly, self.chat.join, self.dave, "python")
        self.assertRaises(
            errors.NotOperator, self.chat.invite, self.bob, self.room, "dave"
        )
        self.everyone()
        self.chat.invite(self.alice, self.room, "DAVE")
        self.assertEqual(self.take(self.dave), [events.Invited("python", "alice")])
        self.assertEqual(self.take(self.alice), [events.InviteSent("python", "dave")])
        self.chat.join(self.dave, "python")
        self.chat.part(self.dave, self.room)
        self.assertRaises(errors.InviteOnly, self.chat.join, self.dave, "python")

    def test_inviteOnlyPassesOnlyThat(self) -> None:
        """An invitation does not pass the key, the limit or a ban."""
        self.chat.set_setting(self.alice, self.room, "key", "k")
        self.chat.invite(self.alice, self.room, "dave")
        self.assertRaises(errors.BadKey, self.chat.join, self.dave, "python")
        self.chat.add_mask(self.alice, self.room, "ban", "dave")
        self.assertRaises(errors.Banned, self.chat.join, self.dave, "python", key="k")

    def test_inviteRules(self) -> None:
        self.assertRaises(
            errors.AlreadyInRoom, self.chat.invite, self.alice, self.room, "bob"
        )
        self.assertRaises(
            errors.NoSuchNick, self.chat.invite, self.alice, self.room, "zed"
        )
        self.assertRaises(
            errors.NotInRoom, self.chat.invite, self.dave, self.room, "alice"
        )
        # Anyone in an open room may invite.
        self.chat.invite(self.bob, self.room, "dave")
        self.assertEqual(self.take(self.dave), [events.Invited("python", "bob")])

    def test_newRoomRefusedLeavesNothing(self) -> None:
        """A refused entry into a registered room does not make it."""
        self.chat.room_records["club"] = RoomRecord(
            "club", "club", "alice", invite_only=True
        )
        self.assertRaises(errors.InviteOnly, self.chat.join, self.dave, "club")
        self.assertNotIn("club", self.chat.rooms)


class BanTests(OperatorTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.carol.address = "10.0.0.7"

    def test_banRemovesAndRefuses(self) -> None:
        """
        A ban puts out whoever it matches, with the reason, and keeps them
        out; the operator who set it stays.
        """
        self.alice.address = "10.0.0.7"
        ban = self.chat.add_mask(
            self.alice, self.room, "ban", "*@10.0.0.7", reason="spam"
        )
        self.assertEqual(ban.mask, "*!*@10.0.0.7")
        self.assertEqual(
            self.take(self.carol),
            [
                events.MaskAdded("python", "alice", "ban", ban),
                events.Kicked("python", "carol", "alice", "spam"),
            ],
        )
        self.assertNotIn(self.carol, self.room.members)
        self.assertIn(self.alice, self.room.members)
        e = self.assertRaises(errors.Banned, self.chat.join, self.carol, "python")
        self.assertEqual((e.room, e.reason), ("python", "spam"))
        self.chat.remove_mask(self.alice, self.room, "ban", "*!*@10.0.0.7")
        self.chat.join(self.carol, "python")

    def test_kinds(self) -> None:
        """By nickname (any case, Unicode), by account, by address."""
        zoe = self.connect("Zoë")
        self.chat.join(zoe, "python")
        self.chat.add_mask(self.alice, self.room, "ban", "ZOË")
        self.assertNotIn(zoe, self.room.members)
        self.bob.account = "bobacct"
        self.chat.add_mask(self.alice, self.room, "ban", "$a:BobAcct")
        self.assertNotIn(self.bob, self.room.members)
        self.chat.add_mask(self.alice, self.room, "ban", "*!*@10.0.0.0/24")
        self.assertNotIn(self.carol, self.room.members)

    def test_expiry(self) -> None:
        self.chat.add_mask(self.alice, self.room, "ban", "carol", duration=60)
        self.assertRaises(errors.Banned, self.chat.join, self.carol, "python")
        self.now += 61
        self.chat.join(self.carol, "python")
        self.chat.list_masks(self.alice, self.room, "ban")
        self.assertIn(events.MaskList("python", "ban", []), self.take(self.alice))

    def test_badDurations(self) -> None:
        for duration in (0, -5, DURATION_MAX + 1):
            self.assertRaises(
                errors.BadDuration,
                self.chat.add_mask,
                self.alice,
                self.room,
                "ban",
                "carol",
                duration,
            )
        self.assertEqual(self.room.bans, {})

    def test_badMask(self) -> None:
        e = self.assertRaises(
            errors.BadMask, self.chat.add_mask, self.alice, self.room, "ban", "a!b!c"
        )
        self.assertEqual(e.mask, "a!b!c")
        self.assertEqual(self.everyone(), [[], [], []])

    def test_onlyOperators(self) -> None:
        self.assertRaises(
            errors.NotOperator,
            self.chat.add_mask,
            self.bob,
            self.room,
            "ban",
            "alice",
        )
        self.chat.add_mask(self.alice, self.room, "ban", "dave")
        self.assertRaises(
            errors.NotOperator,
            self.chat.remove_mask,
            self.bob,
            self.room,
            "ban",
            "dave",
        )
        self.assertEqual(list(self.room.bans), ["dave!*@*"])

    def test_removeAbsent(self) -> None:
        e = self.assertRaises(
            errors.NoSuchMask,
            self.chat.remove_mask,
            self.alice,
            self.room,
            "ban",
            "DAVE",
        )
        self.assertEqual(e.mask, "dave!*@*")

    def test_bounded(self) -> None:
        """A list holds L{LIST_MAX} entries; one more is refused."""
        for n in range(LIST_MAX):
            self.chat.add_mask(self.alice, self.room, "ban", f"troll{n}")
        self.assertRaises(
            errors.ListFull,
            self.chat.add_mask,
            self.alice,
            self.room,
            "ban",
            "onemore",
        )
        # Setting one already there again is not adding.
        self.chat.add_mask(self.alice, self.room, "ban", "troll5", reason="again")
        self.assertEqual(len(self.room.bans), LIST_MAX)

    def test_renameIntoBan(self) -> None:
        """A member may not take a nickname its room bans."""
        self.chat.add_mask(self.alice, self.room, "ban", "evil*")
        e = self.assertRaises(errors.BannedNick, self.chat.rename, self.bob, "evilbob")
        self.assertEqual((e.room, e.nick), ("python", "evilbob"))
        self.assertEqual(self.bob.nick, "bob")
        # An operator may.
        self.chat.rename(self.alice, "evilalice")

    def test_list(self) -> None:
        ban = self.chat.add_mask(self.alice, self.room, "ban", "dave", reason="r")
        self.take(self.bob)
        self.chat.list_masks(self.bob, self.room, "ban")
        self.assertEqual(self.take(self.bob), [events.MaskList("python", "ban", [ban])])
        self.chat.set_setting(self.alice, self.room, "secret", True)
        outsider = self.connect("eve")
        self.assertRaises(
            errors.NotInRoom, self.chat.list_masks, outsider, self.room, "ban"
        )


class SpeakingTests(OperatorTestCase):
    def said(self, member: Member) -> None:
        self.chat.say(member, self.room, "hello")

    def test_moderated(self) -> None:
        """Only operators and voiced members speak in a moderated room."""
        self.chat.set_setting(self.alice, self.room, "moderated", True)
        self.chat.voice(self.alice, self.room, "bob")
        self.everyone()
        self.said(self.alice)
        self.said(self.bob)
        e = self.assertRaises(errors.CannotSpeak, self.said, self.carol)
        self.assertEqual((e.room, e.why), ("python", "moderated"))
        self.assertRaises(
            errors.CannotSpeak, self.chat.act, self.carol, self.room, "waves"
        )
        self.assertRaises(
            errors.CannotSpeak, self.chat.notice, self.carol, self.room, "hi"
        )
        self.assertEqual(len(self.take(self.carol)), 2)
        self.chat.set_setting(self.alice, self.room, "moderated", False)
        self.said(self.carol)

    def test_muted(self) -> None:
        """A quiet silences whom it matches, until it expires or is lifted."""
        self.chat.add_mask(self.alice, self.room, "quiet", "carol", duration=30)
        e = self.assertRaises(errors.CannotSpeak, self.said, self.carol)
        self.assertEqual(e.why, "muted")
        self.said(self.bob)
        self.now += 31
        self.said(self.carol)
        self.assertNotIn(self.carol, self.room.silenced)

    def test_muteFollowsRename(self) -> None:
        self.chat.add_mask(self.alice, self.room, "quiet", "carol*")
        self.chat.rename(self.carol, "caz")
        self.said(self.carol)
        self.chat.rename(self.bob, "carolina")
        self.assertRaises(errors.CannotSpeak, self.said, self.bob)

    def test_muteOnEntryAndLogin(self) -> None:
        self.chat.add_mask(self.alice, self.room, "quiet", "$a:dave")
        dave = self.connect("dave")
        self.chat.join(dave, "python")
        self.said(dave)
        self.chat.log_in(dave, "dave")
        self.assertRaises(errors.CannotSpeak, self.said, dave)
        self.chat.remove_mask(self.alice, self.room, "quiet", "$a:dave")
        self.said(dave)
        self.assertFalse(self.room.gagged)

    def test_voiceAndOperatorsPassMutes(self) -> None:
        self.chat.add_mask(self.alice, self.room, "quiet", "*")
        self.said(self.alice)
        self.assertRaises(errors.CannotSpeak, self.said, self.bob)
        self.chat.voice(self.alice, self.room, "bob")
        self.said(self.bob)

    def test_outside(self) -> None:
        """
        From outside, a room takes messages only with C{no_external} off,
        and not from whom it bans or mutes.
        """
        dave = self.connect("dave")
        self.assertRaises(errors.NotInRoom, self.said, dave)
        self.chat.set_setting(self.alice, self.room, "no_external", False)
        self.everyone()
        self.said(dave)
        self.assertEqual(
            self.everyone(), [[events.Said("python", "dave", "hello")]] * 3
        )
        self.chat.add_mask(self.alice, self.room, "quiet", "dave")
        self.assertEqual(
            self.assertRaises(errors.CannotSpeak, self.said, dave).why, "muted"
        )
        self.chat.add_mask(self.alice, self.room, "ban", "dave")
        self.assertEqual(
            self.assertRaises(errors.CannotSpeak, self.said, dave).why, "banned"
        )


class RegisteredRoomTests(OperatorTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.saved: list[RoomRecord] = []
        self.forgotten: list[str] = []
        self.chat.save_room = self.saved.append
        self.chat.forget_room = self.forgotten.append
        self.alice.account = "alice"

    def test_needsAccountAndOperator(self) -> None:
        e = self.assertRaises(
            errors.NotLoggedIn, self.chat.register_room, self.bob, self.room
        )
        self.assertEqual(e.to, "register_room")
        self.bob.account = "bob"
        self.assertRaises(
            errors.NotOperator, self.chat.register_room, self.bob, self.room
        )
        self.assertEqual(self.saved, [])

    def test_keptWhileEmpty(self) -> None:
        """
        A registered room's settings and lists outlive its members; its
        founder is its operator again on entering, whatever its nick, and
        nobody else becomes one by entering it empty.
        """
        self.chat.register_room(self.alice, self.room)
        self.assertEqual(
            self.take(self.bob), [events.RoomRegistered("python", "alice", "alice")]
        )
        self.chat.set_setting(self.alice, self.room, "moderated", True)
        ban = self.chat.add_mask(self.alice, self.room, "ban", "mallory")
        self.assertEqual(self.saved[-1].bans, (ban,))
        self.assertTrue(self.saved[-1].moderated)
        for member in (self.alice, self.bob, self.carol):
            self.chat.part(member, self.room)
        self.assertNotIn("python", self.chat.rooms)
        room = self.chat.join(self.bob, "PYTHON")
        self.assertEqual(room.name, "python")
        self.assertEqual(room.operators, set())
        self.assertTrue(room.moderated)
        self.assertIn("mallory!*@*", room.bans)
        self.chat.rename(self.alice, "alicia")
        self.chat.join(self.alice, "python")
        self.assertEqual(room.operators, {self.alice})

    def test_founderPassesEntryRules(self) -> None:
        self.chat.register_room(self.alice, self.room)
        self.chat.set_setting(self.alice, self.room, "invite_only", True)
        self.chat.add_mask(self.alice, self.room, "ban", "*")
        self.chat.part(self.alice, self.room)
        room = self.chat.join(self.alice, "python")
        self.assertIn(self.alice, room.operators)

    def test_operatorAccountsKept(self) -> None:
        self.chat.register_room(self.alice, self.room)
        self.bob.account = "bob"
        self.chat.op(self.alice, self.room, "bob")
        self.assertEqual(self.saved[-1].op_accounts, frozenset({"alice", "bob"}))
        self.chat.part(self.bob, self.room)
        self.chat.join(self.bob, "python")
        self.assertIn(self.bob, self.room.operators)
        self.chat.deop(self.alice, self.room, "bob")
        self.assertEqual(self.saved[-1].op_accounts, frozenset({"alice"}))

    def test_unregister(self) -> None:
        self.chat.register_room(self.alice, self.room)
        self.assertRaises(
            errors.RoomAlreadyRegistered,
            self.chat.register_room,
            self.alice,
            self.room,
        )
        self.bob.account = "bob"
        self.assertRaises(
            errors.NotFounder, self.chat.unregister_room, self.bob, self.room
        )
        self.chat.unregister_room(self.bob, self.room, overrule=True)
        self.assertEqual(self.forgotten, ["python"])
        self.assertNotIn("python", self.chat.room_records)
        self.assertRaises(
            errors.RoomNotRegistered,
            self.chat.unregister_room,
            self.alice,
            self.room,
        )

    def test_expiredNotRestored(self) -> None:
        self.chat.register_room(self.alice, self.room)
        self.chat.add_mask(self.alice, self.room, "ban", "x", duration=10)
        for member in (self.alice, self.bob, self.carol):
            self.chat.part(member, self.room)
        self.now += 11
        room = self.chat.join(self.bob, "python")
        self.assertEqual(room.bans, {})


class AuditTests(OperatorTestCase):
    def test_moderationAudited(self) -> None:
        self.chat.add_mask(self.alice, self.room, "quiet", "bob", reason="calm")
        self.chat.remove_mask(self.alice, self.room, "quiet", "bob")
        self.chat.op(self.alice, self.room, "bob")
        self.chat.kick(self.alice, self.room, "carol", "bye")
        self.assertEqual(
            [
                (e.actor, e.action, e.target, e.room, e.detail)
                for e in self.chat.audit.recent(10)
            ],
            [
                ("alice", "quiet", "bob!*@*", "python", "calm"),
                ("alice", "unquiet", "bob!*@*", "python", ""),
                ("alice", "op", "bob", "python", ""),
                ("alice", "kick", "carol", "python", "bye"),
            ],
        )
