"""
Room moderation through the line protocol, in memory: bans, mutes, voices,
invitations, keys and limits, C{/room} settings and registered rooms, as a
line client types and sees them (docs/protocol.md, "Room moderation").
"""

from __future__ import annotations

from chatservice.core.accounts import Account, Accounts
from chatservice.core.history import History
from chatservice.core.moderation import LIST_MAX
from chatservice.frontends.limits import Limits
from chatservice.frontends.line.commands import _SETTINGS, COMMANDS
from chatservice.frontends.line.wire import SETTING_NAMES
from tests.core.test_accounts import HASHER, PASSWORD, Hashing, Saves
from tests.frontends.line.test_operators import ThreeClientsTestCase
from tests.support.memory import Connection, Harness

# 2026-11-24 09:15:02 UTC
WHEN = 1795511702.0
STAMP = "2026-11-24 09:15:02"

NOT_OPERATOR = "!!! You are not an operator of python."


class ModerationTestCase(ThreeClientsTestCase):
    """
    alice (10.0.0.1), bob (10.0.0.7) and carol (10.0.0.9) in the lobby;
    alice created python, bob joined it after, carol is only in the lobby.
    The chat keeps accounts (alice and bob are registered) and runs on the fake
    clock, without flood control.
    """

    def setUp(self) -> None:
        self.harness = Harness(
            Limits(flood_rate=0),
            history=lambda clock: History(clock=clock.seconds),
            accounts=lambda chat, registered: Accounts(
                chat,
                in_thread=Hashing(),
                save=Saves(),
                clock=lambda: self.harness.clock.seconds(),
                accounts=registered,
                hasher=HASHER,
            ),
        )
        self.harness.advance_to(WHEN)
        assert self.harness.accounts is not None
        self.accounts = self.harness.accounts
        self.alice = self.connect("10.0.0.1")
        self.bob = self.connect("10.0.0.7")
        self.carol = self.connect("10.0.0.9")
        self.alice.say("/nick alice")
        self.bob.say("/nick bob")
        self.carol.say("/nick carol")
        self.alice.say("/join python")
        self.bob.say("/join python")
        self.everyone()
        # Registered after they took the names, which are theirs until
        # someone logs in as them.
        for nick in ("alice", "bob"):
            self.accounts.accounts[nick] = Account(nick, HASHER.hash(PASSWORD))

    def connect(self, host: str) -> Connection:
        client = self.harness.connect(self.harness.address(host))
        client.take()
        return client

    def room(self, client: Connection, command: str) -> list[str]:
        client.say(command)
        return client.take()

    def who(self) -> str:
        [line] = self.room(self.carol, "/who python")
        return line


class BanTests(ModerationTestCase):
    def test_banNickListUnban(self) -> None:
        """
        A ban by nickname puts its member out with the reason, is listed,
        keeps it out, and is lifted by any spelling of the same mask.
        """
        self.alice.say("/ban BOB 10m spamming   links")
        banned = "[python] --- alice banned bob!*@* for 10m (spamming   links)"
        kicked = "[python] <-- bob was kicked by alice (spamming   links)"
        self.assertEqual(self.everyone(), [[banned, kicked], [banned, kicked], []])
        self.assertEqual(
            self.room(self.carol, "/bans python"),
            [
                "*** Bans of python (1):",
                f"***   bob!*@* (by alice at {STAMP}, until 2026-11-24 09:25 UTC)"
                ": spamming   links",
            ],
        )
        self.bob.say("/join python")
        self.assertEqual(
            self.bob.take(), ["!!! You are banned from python: spamming   links."]
        )
        self.alice.say("/unban bob!*@*")
        unbanned = "[python] --- alice unbanned bob!*@*"
        self.assertEqual(self.everyone(), [[unbanned], [], []])
        self.assertEqual(self.room(self.alice, "/bans"), ["*** python has no bans."])
        self.bob.say("/join python")
        self.assertEqual(self.bob.take()[0], "*** Now talking in python (2 members).")

    def test_forever(self) -> None:
        """
        Without a duration, or with C{forever}, a ban lasts until lifted;
        without a reason it says none, and the one put out reads "Banned".
        """
        self.alice.say("/ban bob")
        self.assertEqual(
            self.bob.take(),
            [
                "[python] --- alice banned bob!*@*",
                "[python] <-- bob was kicked by alice (Banned)",
            ],
        )
        self.alice.say("/ban carol forever trolling")
        self.alice.take()
        self.assertEqual(
            self.room(self.alice, "/bans"),
            [
                "*** Bans of python (2):",
                f"***   bob!*@* (by alice at {STAMP}, for ever)",
                f"***   carol!*@* (by alice at {STAMP}, for ever): trolling",
            ],
        )

    def test_addressMask(self) -> None:
        """
        A ban by address puts out a connected member from that address,
        who cannot return under another nickname; others may.
        """
        self.carol.say("/join python")
        self.everyone()
        self.alice.say("/ban *@10.0.0.7 1h")
        banned = "[python] --- alice banned *!*@10.0.0.7 for 1h"
        kicked = "[python] <-- bob was kicked by alice (Banned)"
        self.assertEqual(
            self.everyone(), [[banned, kicked], [banned, kicked], [banned, kicked]]
        )
        self.bob.say("/nick robert")
        self.bob.say("/join python")
        self.assertEqual(
            self.bob.take(),
            ["*** You are now known as robert.", "!!! You are banned from python."],
        )
        dave = self.connect("10.0.0.8")
        dave.say("/join python")
        self.assertEqual(dave.take()[0], "*** Now talking in python (3 members).")

    def test_lobbyClosedToNewcomer(self) -> None:
        """
        A newcomer the lobby bans is welcomed, told why it is in no room,
        and may go elsewhere; the server carries on.
        """
        self.alice.say("/join lobby")
        self.alice.say("/ban *@10.0.0.66")
        self.everyone()
        troll = self.harness.connect(self.harness.address("10.0.0.66"))
        lines = troll.take()
        self.assertIn("!!! You are banned from lobby.", lines)
        troll.say("hello?")
        self.assertEqual(
            troll.take(), ["!!! You are not in any room; /join one first."]
        )
        troll.say("/join elsewhere")
        self.assertEqual(troll.take()[0], "*** Now talking in elsewhere (1 member).")
        self.assertNothingElse()

    def test_network(self) -> None:
        self.alice.say("/ban *@10.0.0.0/29")
        self.alice.take()
        self.assertEqual(
            self.bob.take()[1], "[python] <-- bob was kicked by alice (Banned)"
        )
        self.carol.say("/join python")
        self.assertEqual(self.carol.take(), ["*** Now talking in python (2 members)."])

    def test_operatorsStay(self) -> None:
        """A ban that matches an operator does not put it out."""
        self.alice.say("/ban *@10.0.0.*")
        banned = "[python] --- alice banned *!*@10.0.0.*"
        kicked = "[python] <-- bob was kicked by alice (Banned)"
        self.assertEqual(self.everyone(), [[banned, kicked], [banned, kicked], []])
        self.alice.say("still here")
        self.assertEqual(self.who(), "*** python (1 member): @alice")

    def test_account(self) -> None:
        """
        A ban of an account keeps out whoever logs in as it, whatever its
        nickname, and nobody else.
        """
        self.bob.say("/part python")
        self.bob.say("/nick zed")
        self.everyone()
        self.alice.say("/ban $a:Bob")
        self.assertEqual(self.alice.take(), ["[python] --- alice banned $a:bob"])
        self.bob.say("/join python")
        self.assertEqual(self.bob.take()[0], "*** Now talking in python (2 members).")
        self.bob.say("/part python")
        self.bob.say(f"/login bob {PASSWORD}")
        self.bob.take()
        self.bob.say("/join python")
        self.assertEqual(self.bob.take(), ["!!! You are banned from python."])

    def test_unicodeNick(self) -> None:
        """A ban of a Unicode nickname matches it in any case."""
        self.bob.say("/nick Ünal")
        self.everyone()
        self.alice.say("/ban ünAL")
        self.assertEqual(
            self.bob.take(),
            [
                "[python] --- alice banned ünal!*@*",
                "[python] <-- Ünal was kicked by alice (Banned)",
            ],
        )

    def test_renameIntoBan(self) -> None:
        """A member may not take a nickname its room bans while in it."""
        self.alice.say("/ban robert")
        self.everyone()
        self.bob.say("/nick Robert")
        self.assertEqual(
            self.bob.take(),
            ["!!! The nickname Robert is banned in python; you cannot take it there."],
        )
        self.assertNothingElse()

    def test_expires(self) -> None:
        """
        A ban with a duration ends by itself, on the fake clock: it leaves
        the list, and the banned may enter again.
        """
        self.alice.say("/ban bob 10m")
        self.everyone()
        self.harness.advance(599)
        self.bob.say("/join python")
        self.assertEqual(self.bob.take(), ["!!! You are banned from python."])
        self.harness.advance(1)
        self.bob.say("/join python")
        self.assertEqual(self.bob.take()[0], "*** Now talking in python (2 members).")
        self.assertEqual(self.room(self.alice, "/bans")[-1], "*** python has no bans.")

    def test_badMasks(self) -> None:
        cases = [
            "!!! Invalid mask bob!x!y: a mask is nick!user@host, each part once.",
            "!!! Invalid mask $x:bob: the only extended mask is $a:account.",
            "!!! Invalid mask $a:: an account mask needs an account: $a:name.",
            "!!! Invalid mask *@10.0.0.0/99: 10.0.0.0/99 is not a network.",
            "!!! Invalid mask a,b: a mask cannot hold spaces, commas or control "
            "characters.",
        ]
        for line in cases:
            mask = line.split(" ")[3].removesuffix(":")
            self.assertRefused([(self.alice, f"/ban {mask}", line)])
        long = "x" * 201
        self.alice.say(f"/mute {long}")
        [refusal] = self.alice.take()
        self.assertTrue(refusal.endswith(": a mask is at most 200 characters."))
        self.assertEqual(self.room(self.alice, "/bans"), ["*** python has no bans."])

    def test_badDurations(self) -> None:
        """
        A duration in the past, past ten years, or not one is refused, not
        taken as the first word of a reason of a ban for ever.
        """
        advice = "give 30s, 10m, 2h, 7d or 4w (at most ten years), or forever."
        cases = [
            (
                self.alice,
                f"/ban bob {word} why",
                f"!!! Invalid duration {word}: {advice}",
            )
            for word in ["-5m", "+0", "3661d", "999999999999w", "10x", "2026-12-03"]
        ]
        cases.append(
            (self.alice, "/mute bob -1h", f"!!! Invalid duration -1h: {advice}")
        )
        self.assertRefused(cases)
        self.assertEqual(self.room(self.alice, "/bans"), ["*** python has no bans."])
        self.assertEqual(self.room(self.alice, "/mutes"), ["*** python has no mutes."])
        self.assertEqual(self.who(), "*** python (2 members): @alice, bob")

    def test_longestDuration(self) -> None:
        self.alice.say("/ban carol 3660d")
        self.assertEqual(
            self.alice.take(), ["[python] --- alice banned carol!*@* for 3660d"]
        )

    def test_reasonAfterWords(self) -> None:
        """A reason whose first word is no duration is all reason."""
        self.alice.say("/ban carol too many links")
        self.assertEqual(
            self.alice.take(),
            ["[python] --- alice banned carol!*@* (too many links)"],
        )

    def test_listFull(self) -> None:
        """
        A room keeps at most LIST_MAX bans; past that a new one is refused,
        while one already listed may still be set again.
        """
        chat = self.harness.chat
        alice = chat.members["alice"]
        room = chat.room("python")
        for n in range(LIST_MAX):
            chat.add_mask(alice, room, "ban", f"troll{n}")
        self.harness.turn()
        self.everyone()
        self.assertRefused(
            [
                (
                    self.alice,
                    "/ban onemore",
                    "!!! The ban list of python is full (1000 entries); "
                    "remove some first.",
                )
            ]
        )
        self.alice.say("/ban troll7 1d")
        self.assertEqual(
            self.alice.take(), ["[python] --- alice banned troll7!*@* for 1d"]
        )
        self.assertEqual(len(self.room(self.carol, "/bans python")), LIST_MAX + 1)

    def test_refusals(self) -> None:
        self.assertRefused(
            [
                (self.alice, "/ban", "!!! Usage: /ban MASK [DURATION] [REASON]"),
                (self.alice, "/unban", "!!! Usage: /unban MASK"),
                (self.alice, "/unban a b", "!!! Usage: /unban MASK"),
                (self.alice, "/unban zed", "!!! zed!*@* is not banned in python."),
                (self.carol, "/bans python2", "!!! No such room: python2."),
            ]
        )


class MuteTests(ModerationTestCase):
    def test_muteExpires(self) -> None:
        """
        A muted member gets one clear line for each line it tries, and
        nothing reaches the room; when the mute ends it speaks again.
        """
        self.alice.say("/mute bob 2m calm down")
        muted = "[python] --- alice muted bob!*@* for 2m (calm down)"
        self.assertEqual(self.everyone(), [[muted], [muted], []])
        self.bob.say("/join python")
        self.bob.take()
        self.bob.lines("one", "two")
        self.bob.say("/me shouts")
        self.assertEqual(self.bob.take(), ["!!! You are muted in python."] * 3)
        self.assertNothingElse()
        self.bob.say("/join lobby")
        self.bob.say("lobby is fine")
        self.assertEqual(self.carol.take(), ["[lobby] <bob> lobby is fine"])
        self.bob.say("/join python")
        self.everyone()
        self.harness.advance(120)
        self.bob.say("free again")
        self.assertEqual(self.alice.take(), ["[python] <bob> free again"])
        self.assertEqual(self.room(self.alice, "/mutes"), ["*** python has no mutes."])

    def test_listAndUnmute(self) -> None:
        self.alice.say("/mute bob")
        self.alice.say("/mute *@10.0.0.9 1d")
        self.everyone()
        self.assertEqual(
            self.room(self.bob, "/mutes"),
            [
                "*** Mutes of python (2):",
                f"***   bob!*@* (by alice at {STAMP}, for ever)",
                f"***   *!*@10.0.0.9 (by alice at {STAMP}, until 2026-11-25 09:15 UTC)",
            ],
        )
        self.alice.say("/unmute Bob")
        unmuted = "[python] --- alice unmuted bob!*@*"
        self.assertEqual(self.everyone(), [[unmuted], [unmuted], []])
        self.bob.say("hi")
        self.assertEqual(self.alice.take(), ["[python] <bob> hi"])
        self.assertRefused(
            [(self.alice, "/unmute bob", "!!! bob!*@* is not muted in python.")]
        )

    def test_operatorsSpeak(self) -> None:
        """A mute that matches an operator does not silence it."""
        self.alice.say("/mute *")
        self.everyone()
        self.alice.say("I still speak")
        self.assertEqual(self.bob.take(), ["[python] <alice> I still speak"])


class VoiceTests(ModerationTestCase):
    def test_moderated(self) -> None:
        """
        In a moderated room only operators and voiced members speak; /who
        marks the voiced with C{+}.
        """
        self.carol.say("/join python")
        self.alice.say("/room set moderated on")
        self.everyone()
        self.bob.say("hello?")
        self.assertEqual(
            self.bob.take(),
            ["!!! python is moderated: only operators and voiced members speak."],
        )
        self.assertNothingElse()
        self.alice.say("/voice bob")
        voiced = "[python] --- alice gave bob a voice"
        self.assertEqual(self.everyone(), [[voiced], [voiced], [voiced]])
        self.assertEqual(self.who(), "*** python (3 members): @alice, +bob, carol")
        self.bob.say("hello!")
        self.assertEqual(self.carol.take(), ["[python] <bob> hello!"])
        self.everyone()
        self.alice.say("/devoice BOB")
        devoiced = "[python] --- alice took bob's voice"
        self.assertEqual(self.everyone(), [[devoiced], [devoiced], [devoiced]])
        self.assertEqual(self.who(), "*** python (3 members): @alice, bob, carol")

    def test_unchanged(self) -> None:
        self.alice.say("/voice bob")
        self.everyone()
        self.alice.say("/voice bob")
        self.alice.say("/devoice alice")
        self.assertEqual(
            self.alice.take(),
            [
                "*** bob has a voice in python already.",
                "*** alice has no voice in python.",
            ],
        )
        self.assertNothingElse()

    def test_refusals(self) -> None:
        self.assertRefused(
            [
                (self.bob, "/voice bob", NOT_OPERATOR),
                (self.bob, "/devoice alice", NOT_OPERATOR),
                (self.alice, "/voice carol", "!!! carol is not in python."),
                (self.alice, "/voice zed", "!!! No such nickname: zed."),
                (self.alice, "/voice", "!!! Usage: /voice NICK"),
                (self.alice, "/devoice a b", "!!! Usage: /devoice NICK"),
            ]
        )


class InviteTests(ModerationTestCase):
    def test_inviteOnly(self) -> None:
        """
        An invite-only room refuses the uninvited; an invitation lets one
        in, once.
        """
        self.alice.say("/room set invite on")
        line = "[python] --- alice made the room invite only"
        self.assertEqual(self.everyone(), [[line], [line], []])
        self.carol.say("/join python")
        refused = "!!! python is invite only: an operator of it must /invite you first."
        self.assertEqual(self.carol.take(), [refused])
        self.alice.say("/invite Carol")
        self.assertEqual(self.alice.take(), ["*** You invited carol to python."])
        self.assertEqual(
            self.carol.take(),
            ["*** alice invites you to python: /join python to enter."],
        )
        self.carol.say("/join python")
        self.assertEqual(self.carol.take()[0], "*** Now talking in python (3 members).")
        self.carol.say("/part python")
        self.carol.say("/join python")
        self.assertEqual(self.carol.take()[-1], refused)

    def test_namedRoom(self) -> None:
        """
        C{/invite NICK ROOM} invites into a room the inviter is in but not
        talking in; members who are not operators may invite into an open
        room.
        """
        self.bob.say("/join lobby")
        self.bob.take()
        self.bob.say("/invite carol python")
        self.assertEqual(self.bob.take(), ["*** You invited carol to python."])
        self.assertEqual(
            self.carol.take(), ["*** bob invites you to python: /join python to enter."]
        )

    def test_refusals(self) -> None:
        self.alice.say("/room set invite on")
        self.everyone()
        self.assertRefused(
            [
                (self.bob, "/invite carol", NOT_OPERATOR),
                (self.alice, "/invite bob", "!!! bob is in python already."),
                (self.alice, "/invite zed", "!!! No such nickname: zed."),
                (self.carol, "/invite bob python", "!!! You are not in python."),
                (self.alice, "/invite", "!!! Usage: /invite NICK [ROOM]"),
                (self.alice, "/invite a b c", "!!! Usage: /invite NICK [ROOM]"),
            ]
        )


class KeyAndLimitTests(ModerationTestCase):
    def test_key(self) -> None:
        self.alice.say("/room set key s3cret")
        line = "[python] --- alice set the key to s3cret"
        self.assertEqual(self.everyone(), [[line], [line], []])
        refused = "!!! python has a key, and that was not it: /join python KEY."
        self.carol.say("/join python")
        self.carol.say("/join python wrong")
        self.assertEqual(self.carol.take(), [refused, refused])
        self.carol.say("/join python s3cret")
        self.assertEqual(self.carol.take()[0], "*** Now talking in python (3 members).")
        self.everyone()
        self.alice.say("/room set key off")
        line = "[python] --- alice removed the key"
        self.assertEqual(self.everyone(), [[line], [line], [line]])

    def test_limit(self) -> None:
        self.alice.say("/room set limit 2")
        line = "[python] --- alice limited the room to 2 members"
        self.assertEqual(self.everyone(), [[line], [line], []])
        self.carol.say("/join python")
        self.assertEqual(self.carol.take(), ["!!! python is full; try again later."])
        self.alice.say("/room set limit OFF")
        self.everyone()
        self.carol.say("/join python")
        self.assertEqual(self.carol.take()[0], "*** Now talking in python (3 members).")

    def test_refusalOrder(self) -> None:
        """A ban is told before the invitation, key or limit it also lacks."""
        for line in ["/room set invite on", "/room set key k", "/ban carol"]:
            self.alice.say(line)
        self.everyone()
        self.carol.say("/join python k")
        self.assertEqual(self.carol.take(), ["!!! You are banned from python."])


class RoomTests(ModerationTestCase):
    def test_info(self) -> None:
        """
        C{/room info} names each setting as C{/room set} takes it; the key
        is shown to members.
        """
        self.assertEqual(
            self.room(self.bob, "/room info"),
            [
                "*** Settings of python: invite off, key off, limit off, "
                "moderated off, secret off, topiclock on, external off; not "
                f"registered; created {STAMP}."
            ],
        )
        for line in [
            "/room set invite on",
            "/room set key k",
            "/room set limit 10",
            "/room set moderated on",
            "/room set secret on",
            "/room set topiclock off",
            "/room set external on",
        ]:
            self.alice.say(line)
        self.bob.say("/join lobby")
        self.everyone()
        self.assertEqual(
            self.room(self.bob, "/room info python"),
            [
                "*** Settings of python: invite on, key k, limit 10, "
                "moderated on, secret on, topiclock off, external on; not "
                f"registered; created {STAMP}."
            ],
        )
        self.assertRefused(
            [(self.carol, "/room info python", "!!! You are not in python.")]
        )

    def test_settingLines(self) -> None:
        """Each change is told to the room, as the setting reads."""
        cases = [
            (
                "moderated on",
                "made the room moderated: only operators and voices speak",
            ),
            ("moderated off", "let everyone speak"),
            ("secret on", "made the room secret"),
            ("secret off", "made the room public"),
            ("topiclock off", "let anyone set the topic"),
            ("topiclock on", "let only operators set the topic"),
            ("external on", "opened the room to outside messages"),
            ("external off", "closed the room to outside messages"),
            ("invite on", "made the room invite only"),
            ("invite off", "opened the room to all"),
        ]
        for setting, done in cases:
            self.alice.say(f"/room set {setting}")
            line = f"[python] --- alice {done}"
            self.assertEqual(self.everyone(), [[line], [line], []], setting)
        # Setting what is set already says nothing.
        self.alice.say("/room set invite off")
        self.assertNothingElse()

    def test_topicLock(self) -> None:
        self.alice.say("/room set topiclock off")
        self.everyone()
        self.bob.say("/topic mine")
        self.assertEqual(self.bob.take(), ["[python] --- bob set the topic: mine"])

    def test_secret(self) -> None:
        """A secret room is no room at all to whoever is not in it."""
        self.alice.say("/room set secret on")
        self.everyone()
        self.assertEqual(
            self.room(self.carol, "/rooms"), ["*** 1 room(s):", "***   lobby (3)"]
        )
        self.assertRefused(
            [
                (self.carol, "/who python", "!!! No such room: python."),
                (self.carol, "/bans python", "!!! No such room: python."),
                (self.carol, "/mutes python", "!!! No such room: python."),
            ]
        )
        self.assertEqual(
            self.room(self.bob, "/who python"), ["*** python (2 members): @alice, bob"]
        )

    def test_badSettings(self) -> None:
        flag = "(it takes on or off)."
        self.assertRefused(
            [
                (
                    self.alice,
                    "/room set invite maybe",
                    f"!!! Invalid value for invite: maybe {flag}",
                ),
                (
                    self.alice,
                    "/room set external 1",
                    f"!!! Invalid value for external: 1 {flag}",
                ),
                (
                    self.alice,
                    "/room set limit 0",
                    "!!! Invalid value for limit: 0 (it takes a number from 1 to "
                    "1000000, or off).",
                ),
                (
                    self.alice,
                    "/room set limit -3",
                    "!!! Invalid value for limit: -3 (it takes a number from 1 to "
                    "1000000, or off).",
                ),
                (
                    self.alice,
                    "/room set limit 99999999999999999999",
                    "!!! Invalid value for limit: 99999999999999999999 (it takes a "
                    "number from 1 to 1000000, or off).",
                ),
                (
                    self.alice,
                    f"/room set key {'k' * 24}",
                    f"!!! Invalid value for key: {'k' * 24} (it takes a word of 1 to "
                    "23 characters without commas, or off).",
                ),
                (
                    self.alice,
                    "/room set key a,b",
                    "!!! Invalid value for key: a,b (it takes a word of 1 to 23 "
                    "characters without commas, or off).",
                ),
                (
                    self.alice,
                    "/room set colour red",
                    "!!! No such setting: colour. Settings: external, invite, key, "
                    "limit, moderated, secret, topiclock.",
                ),
            ]
        )
        usage = (
            "!!! Usage: /room info [ROOM] | set SETTING VALUE | register | unregister"
        )
        self.assertRefused(
            [
                (self.alice, line, usage)
                for line in [
                    "/room",
                    "/room set",
                    "/room set invite",
                    "/room set key a b",
                    "/room info a b",
                    "/room paint",
                    "/room register now",
                ]
            ]
        )

    def test_settingNames(self) -> None:
        """What /room set takes is what /room info and refusals name."""
        self.assertEqual(
            {name: SETTING_NAMES[setting] for name, (setting, _) in _SETTINGS.items()},
            {name: name for name in _SETTINGS},
        )
        self.assertEqual(len(SETTING_NAMES), len(_SETTINGS))


class RegisterTests(ModerationTestCase):
    def login(self, client: Connection, nick: str) -> None:
        client.say(f"/login {nick} {PASSWORD}")
        self.everyone()

    def test_registerAndReturn(self) -> None:
        """
        A registered room keeps its founder, who is an operator again on
        entering under another nickname.
        """
        self.login(self.alice, "alice")
        self.alice.say("/room register")
        line = "[python] --- alice registered the room to the account alice"
        self.assertEqual(self.everyone(), [[line], [line], []])
        self.assertTrue(
            self.room(self.alice, "/room info")[0].endswith(
                f"registered to alice; created {STAMP}."
            )
        )
        self.alice.say("/part python")
        self.bob.say("/part python")
        self.alice.say("/nick ally")
        self.everyone()
        self.carol.say("/join python")
        self.alice.say("/join python")
        self.everyone()
        self.assertEqual(self.who(), "*** python (2 members): carol, @ally")
        self.assertRefused(
            [
                (
                    self.alice,
                    "/room register",
                    "!!! python is registered to alice already.",
                ),
            ]
        )
        self.alice.say("/room unregister")
        line = "[python] --- ally unregistered the room"
        self.assertEqual(self.everyone(), [[line], [], [line]])

    def test_refusals(self) -> None:
        self.login(self.bob, "bob")
        self.assertRefused(
            [
                (
                    self.alice,
                    "/room register",
                    "!!! Only a logged-in user may register a room: /login NICK "
                    "PASSWORD.",
                ),
                (self.bob, "/room register", NOT_OPERATOR),
                (self.alice, "/room unregister", "!!! python is not registered."),
            ]
        )
        self.login(self.alice, "alice")
        self.alice.say("/room register")
        self.everyone()
        self.assertRefused(
            [
                (
                    self.bob,
                    "/room unregister",
                    "!!! Only the founder of python may do that.",
                )
            ]
        )


class NotOperatorTests(ModerationTestCase):
    def test_everyCommand(self) -> None:
        """
        A member who is not an operator tries every moderation command:
        each is refused, clearly, and nothing changes.
        """
        self.alice.say("/mute carol")
        self.everyone()
        before = [
            self.room(self.alice, line)
            for line in ["/room info", "/bans", "/mutes", "/who"]
        ]
        self.assertRefused(
            [
                (self.bob, line, NOT_OPERATOR)
                for line in [
                    "/ban alice",
                    "/ban *@10.0.0.1 10m because",
                    "/ban $a:alice",
                    "/unban alice",
                    "/mute alice 1h",
                    "/unmute carol",
                    "/voice bob",
                    "/devoice alice",
                    "/room set invite on",
                    "/room set key k",
                    "/room set limit 1",
                    "/room set moderated on",
                    "/room set secret on",
                    "/room set topiclock off",
                    "/room set external on",
                    "/kick alice",
                    "/op bob",
                    "/deop alice",
                    "/topic mine",
                ]
            ]
        )
        self.assertRefused(
            [
                # Malformed input is refused for what is wrong with it.
                (
                    self.bob,
                    "/ban bob!x!y",
                    "!!! Invalid mask bob!x!y: a mask is "
                    "nick!user@host, each part once.",
                ),
                (
                    self.bob,
                    "/ban alice -5m",
                    "!!! Invalid duration -5m: give 30s, "
                    "10m, 2h, 7d or 4w (at most ten years), or forever.",
                ),
                # Outside the room: not in it.
                (
                    self.carol,
                    "/room set invite on",
                    "!!! You are not an operator of lobby.",
                ),
            ]
        )
        after = [
            self.room(self.alice, line)
            for line in ["/room info", "/bans", "/mutes", "/who"]
        ]
        self.assertEqual(after, before)


class HelpTests(ModerationTestCase):
    def test_listed(self) -> None:
        self.carol.say("/help")
        listed = "\n".join(self.carol.take())
        for name in [
            "ban",
            "unban",
            "bans",
            "mute",
            "unmute",
            "mutes",
            "voice",
            "devoice",
            "invite",
            "room",
        ]:
            self.assertIn(f"***   {COMMANDS[name].usage}: ", listed)
