"""
Room moderation through IRC: channel modes, JOIN's refusals and keys,
INVITE, and who may speak, over the core's moderation (issue 14).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chatservice.core.moderation import LIST_MAX
from chatservice.core.rooms import Member, Room
from chatservice.frontends.irc.protocol import MODES
from chatservice.frontends.limits import Limits
from tests.frontends.irc.test_protocol import SERVER, codes, register
from tests.support.memory import Connection, Harness, discard

ALICE = ":alice!alice@chatservice"


class ModerationTestCase(SynchronousTestCase):
    """
    alice runs #chan, bob is in it, carol is not.
    """

    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        # Bans and quiets lapse by the harness's clock.
        self.harness.chat.clock = self.harness.clock.seconds
        self.alice = self.client("alice")
        self.bob = self.client("bob")
        self.carol = self.client("carol")
        self.alice.send("JOIN #chan\r\n")
        self.bob.send("JOIN #chan\r\n")
        discard(self.alice, self.bob, self.carol)

    def client(self, nick: str, host: str = "10.0.0.1") -> Connection:
        connection = self.harness.connect_irc(self.harness.address(host))
        register(connection, nick)
        return connection

    def member(self, connection: Connection) -> Member:
        member = connection.proto.member
        assert member is not None
        return member

    @property
    def room(self) -> Room:
        return self.harness.chat.rooms["chan"]

    def modes(self, connection: Connection) -> str:
        """What MODE #chan answers C{connection}: its 324's modes and values."""
        connection.send("MODE #chan\r\n")
        lines = connection.take()
        self.assertEqual(codes(lines), ["324", "329"])
        return lines[0].split(" ", 4)[4]


class ChannelModeTests(ModerationTestCase):
    def test_flags(self) -> None:
        """
        Each flag is set and unset by MODE, echoed to the channel, and
        shown by MODE #chan.
        """
        self.assertEqual(self.modes(self.bob), "+nt")
        for letter, setting in [
            ("i", "invite_only"),
            ("m", "moderated"),
            ("n", "no_external"),
            ("s", "secret"),
            ("t", "topic_locked"),
        ]:
            before = getattr(self.room, setting)
            sign = "-" if before else "+"
            self.alice.send(f"MODE #chan {sign}{letter}\r\n")
            self.assertEqual(
                self.bob.take(), [f"{ALICE} MODE #chan {sign}{letter}"], letter
            )
            self.assertEqual(getattr(self.room, setting), not before)
        self.assertEqual(self.modes(self.bob), "+ims")

    def test_keyAndLimit(self) -> None:
        """
        The key and the limit are shown with their values to members, and
        as letters alone to others.
        """
        self.alice.send("MODE #chan +k sesame\r\n")
        self.alice.send("MODE #chan +l 5\r\n")
        self.assertEqual(
            self.bob.take(),
            [f"{ALICE} MODE #chan +k sesame", f"{ALICE} MODE #chan +l 5"],
        )
        self.assertEqual(self.room.key, "sesame")
        self.assertEqual(self.room.limit, 5)
        self.assertEqual(self.modes(self.bob), "+ntkl sesame 5")
        self.assertEqual(self.modes(self.carol), "+ntkl")
        # -k takes an argument, which need not be the key; -l takes none.
        self.alice.send("MODE #chan -k whatever\r\n")
        self.alice.send("MODE #chan -l\r\n")
        self.assertEqual(
            self.bob.take(), [f"{ALICE} MODE #chan -k *", f"{ALICE} MODE #chan -l"]
        )
        self.assertIsNone(self.room.key)
        self.assertIsNone(self.room.limit)

    def test_oneLine(self) -> None:
        """
        The changes of one MODE line are echoed in one line, in order, with
        their arguments; those that change nothing are left out.
        """
        self.alice.send("MODE #chan +imk-t+lbqnv key 9 Evil mute!*@* bob\r\n")
        expected = f"{ALICE} MODE #chan +imk-t+lbqv key 9 evil!*@* mute!*@* bob"
        self.assertEqual(self.bob.take(), [expected])
        self.assertEqual(self.alice.take(), [expected])
        self.assertEqual(self.modes(self.bob), "+imnkl key 9")

    def test_linesAreBounded(self) -> None:
        """
        Changes past the MODES-th argument are ignored; the changes of
        several lines are echoed in lines of IRC's size.
        """
        masks = [f"m{n}" for n in range(MODES + 3)]
        self.alice.send(f"MODE #chan +{'b' * len(masks)} {' '.join(masks)}\r\n")
        expected = " ".join(f"{mask}!*@*" for mask in masks[:MODES])
        self.assertEqual(
            self.bob.take(), [f"{ALICE} MODE #chan +{'b' * MODES} {expected}"]
        )
        self.assertEqual(len(self.room.bans), MODES)
        long = [f"{'x' * 150}{n}" for n in range(6)]
        self.alice.send(
            f"MODE #chan +bb {long[0]} {long[1]}\r\n"
            f"MODE #chan +bb {long[2]} {long[3]}\r\n"
            f"MODE #chan +bb {long[4]} {long[5]}\r\n"
        )
        lines = self.bob.take()
        self.assertEqual(len(lines), 2)
        shown = []
        for line in lines:
            self.assertLessEqual(len(line.encode()) + 2, 512)
            prefix, mode, channel, modes, *arguments = line.split(" ")
            self.assertEqual((prefix, mode, channel), (ALICE, "MODE", "#chan"))
            self.assertEqual(modes, "+" + "b" * len(arguments))
            shown.extend(arguments)
        self.assertEqual(shown, [f"{mask}!*@*" for mask in long])

    def test_nonOperator(self) -> None:
        """
        A member who is not an operator gets one 482 for a line of changes,
        whatever they are, and nothing changes; a non-member gets 442.
        """
        self.alice.send("MODE #chan +b banned!*@*\r\nMODE #chan +q quiet!*@*\r\n")
        self.alice.send("MODE #chan +k key\r\nMODE #chan +l 9\r\n")
        discard(self.alice, self.bob)
        before = self.modes(self.alice)
        every = "MODE #chan +imnstkblqov-imnstkblqov k 5 b q bob bob k b q bob bob"
        # Even a bad argument from a non-operator draws only 482.
        for change in [
            every,
            "MODE #chan +b x",
            "MODE #chan -b banned!*@*",
            "MODE #chan +q x",
            "MODE #chan -q quiet!*@*",
            "MODE #chan -k key",
            "MODE #chan +l 3",
            "MODE #chan -l",
            "MODE #chan +o bob",
            "MODE #chan -o alice",
            "MODE #chan +v bob",
            "MODE #chan -t",
            "MODE #chan +i",
        ]:
            self.bob.send(change + "\r\n")
            self.assertEqual(
                self.bob.take(),
                [f"{SERVER} 482 bob #chan :You're not channel operator"],
                change,
            )
            self.carol.send(change + "\r\n")
            self.assertEqual(codes(self.carol.take()), ["442"], change)
        # A bad argument is refused as such, before anything else.
        self.bob.send("MODE #chan +bl $bad abc\r\n")
        self.assertEqual(codes(self.bob.take()), ["696", "696"])
        self.assertEqual(self.alice.take(), [])
        self.assertEqual(self.modes(self.alice), before)
        self.assertEqual(list(self.room.bans), ["banned!*@*"])
        self.assertEqual(list(self.room.quiets), ["quiet!*@*"])
        self.assertEqual(self.room.voiced, set())
        self.assertEqual(self.room.operators, {self.member(self.alice)})

    def test_malformed(self) -> None:
        """
        A bad mask, key or limit gets ERR_INVALIDMODEPARAM (the key itself
        is not repeated); a missing argument 461; an unknown letter 472.
        The rest of the line is carried out.
        """
        self.alice.send(
            "MODE #chan +bbbb $x:y a!b!c@d %s ok\r\n" % ("z" * 300)
            + "MODE #chan +b :\r\n"
            + "MODE #chan +k :has space\r\nMODE #chan +k a,b\r\n"
            + f"MODE #chan +k {'k' * 24}\r\nMODE #chan +k\r\n"
            + "MODE #chan +l abc\r\nMODE #chan +l 0\r\nMODE #chan +l -1\r\n"
            + "MODE #chan +l :\r\nMODE #chan +l 99999999999\r\nMODE #chan +l\r\n"
            + "MODE #chan +Z\r\nMODE #chan +b *@10.0.0.0/99\r\n"
        )
        lines = self.alice.take()
        self.assertEqual(
            [line.split(" :", 1)[0] for line in lines if line.startswith(SERVER)],
            [
                f"{SERVER} 696 alice #chan b $x:y",
                f"{SERVER} 696 alice #chan b a!b!c@d",
                f"{SERVER} 696 alice #chan b {'z' * 64}",
                f"{SERVER} 696 alice #chan b *",
                f"{SERVER} 696 alice #chan k *",
                f"{SERVER} 696 alice #chan k *",
                f"{SERVER} 696 alice #chan k *",
                f"{SERVER} 461 alice MODE",
                f"{SERVER} 696 alice #chan l abc",
                f"{SERVER} 696 alice #chan l 0",
                f"{SERVER} 696 alice #chan l -1",
                f"{SERVER} 696 alice #chan l *",
                f"{SERVER} 696 alice #chan l 99999999999",
                f"{SERVER} 461 alice MODE",
                f"{SERVER} 472 alice Z",
                f"{SERVER} 696 alice #chan b *@10.0.0.0/99",
            ],
        )
        # Room events go out after replies, at the end of the turn.
        self.assertEqual(lines[-1], f"{ALICE} MODE #chan +b ok!*@*")
        self.assertEqual(list(self.room.bans), ["ok!*@*"])
        self.assertEqual(self.modes(self.alice), "+nt")

    def test_removeAbsent(self) -> None:
        """
        Taking off a mask that is not on the list changes nothing, and
        says so.
        """
        self.alice.send("MODE #chan -b nobody\r\n")
        self.assertEqual(
            self.alice.take(),
            [f"{SERVER} NOTICE alice :nobody!*@* is not on the ban list of #chan"],
        )
        self.assertEqual(self.bob.take(), [])


class ListTests(ModerationTestCase):
    def test_banList(self) -> None:
        """
        MODE #chan b (or +b) lists the bans with who set them and when;
        anyone who may see the channel may list them.
        """
        self.harness.advance(100)
        when = int(self.harness.clock.seconds())
        self.alice.send("MODE #chan +b *!*@10.9.0.0/16\r\nMODE #chan +b BAD\r\n")
        expected = [
            f"{SERVER} 367 carol #chan *!*@10.9.0.0/16 alice {when}",
            f"{SERVER} 367 carol #chan bad!*@* alice {when}",
            f"{SERVER} 368 carol #chan :End of channel ban list",
        ]
        for query in ["MODE #chan b", "MODE #chan +b", "MODE #chan bb"]:
            self.carol.send(query + "\r\n")
            self.assertEqual(self.carol.take(), expected, query)

    def test_quietList(self) -> None:
        """MODE #chan q lists the quiets, with Solanum's 728 and 729."""
        self.alice.send("MODE #chan +q $a:troll\r\n")
        self.assertEqual(self.bob.take(), [f"{ALICE} MODE #chan +q $a:troll"])
        when = int(self.harness.clock.seconds())
        self.bob.send("MODE #chan q\r\n")
        self.assertEqual(
            self.bob.take(),
            [
                f"{SERVER} 728 bob #chan q $a:troll alice {when}",
                f"{SERVER} 729 bob #chan q :End of channel quiet list",
            ],
        )
        self.alice.send("MODE #chan -q $A:Troll\r\n")
        self.assertEqual(self.bob.take(), [f"{ALICE} MODE #chan -q $a:troll"])

    def test_bounded(self) -> None:
        """
        A list holds LIST_MAX masks; one more gets ERR_BANLISTFULL, and
        listing them all stays within IRC's lines.
        """
        masks = [f"m{n}" for n in range(LIST_MAX)]
        for start in range(0, LIST_MAX, MODES):
            chunk = masks[start : start + MODES]
            self.alice.send(f"MODE #chan +{'b' * len(chunk)} {' '.join(chunk)}\r\n")
        self.assertEqual(len(self.room.bans), LIST_MAX)
        discard(self.alice, self.bob)
        self.alice.send("MODE #chan +b onemore\r\n")
        self.assertEqual(
            self.alice.take(),
            [f"{SERVER} 478 alice #chan b :Channel ban list is full (1000 entries)"],
        )
        self.alice.send("MODE #chan b\r\n")
        lines = self.alice.take()
        self.assertEqual(codes(lines), ["367"] * LIST_MAX + ["368"])
        # A mask already there is set again, list full or not.
        self.alice.send("MODE #chan +b m1\r\n")
        self.assertEqual(self.bob.take(), [f"{ALICE} MODE #chan +b m1!*@*"])


class BanTests(ModerationTestCase):
    def test_banByNick(self) -> None:
        """
        A ban puts out the members it matches (not operators) and keeps
        them out; taking it off lets them in again.
        """
        self.alice.send("MODE #chan +b BOB\r\n")
        self.assertEqual(
            self.bob.take(),
            [f"{ALICE} MODE #chan +b bob!*@*", f"{ALICE} KICK #chan bob Banned"],
        )
        self.bob.send("JOIN #chan\r\n")
        self.assertEqual(
            self.bob.take(), [f"{SERVER} 474 bob #chan :Cannot join channel (+b)"]
        )
        self.alice.send("MODE #chan -b bob!*@*\r\n")
        self.bob.send("JOIN #chan\r\n")
        self.assertEqual(self.bob.take()[0], ":bob!bob@chatservice JOIN #chan")

    def test_unicodeNick(self) -> None:
        """A nickname mask matches however the nickname is cased."""
        zoe = self.client("Zoë")
        self.alice.send("MODE #chan +b ZOË*\r\n")
        self.assertEqual(self.bob.take(), [f"{ALICE} MODE #chan +b zoë*!*@*"])
        zoe.send("JOIN #chan\r\n")
        self.assertEqual(codes(zoe.take()), ["474"])
        # Nor may a member take a banned nickname.
        self.bob.send("NICK ZOËLLE\r\n")
        self.assertEqual(
            self.bob.take(),
            [
                f"{SERVER} 435 bob ZOËLLE #chan "
                ":Cannot change nickname while banned on channel"
            ],
        )
        self.assertEqual(self.bob.nick, "bob")

    def test_addressMask(self) -> None:
        """A mask's host may be an address or a network of them."""
        dave = self.client("dave", "192.0.2.7")
        erin = self.client("erin", "192.0.3.7")
        self.alice.send("MODE #chan +b *!*@192.0.2.0/24\r\n")
        dave.send("JOIN #chan\r\n")
        erin.send("JOIN #chan\r\n")
        self.assertEqual(codes(dave.take()), ["474"])
        self.assertEqual(erin.take()[0], ":erin!erin@chatservice JOIN #chan")
        self.alice.send("MODE #chan +b erin!*@192.0.3.7\r\n")
        self.assertEqual(erin.take()[-1], f"{ALICE} KICK #chan erin Banned")

    def test_accountMask(self) -> None:
        """$a:account bans whoever is logged in as the account."""
        dave = self.client("dave")
        self.harness.chat.log_in(self.member(dave), "dave", take_name=False)
        self.alice.send("MODE #chan +b $a:DAVE\r\n")
        self.assertEqual(self.bob.take(), [f"{ALICE} MODE #chan +b $a:dave"])
        dave.send("JOIN #chan\r\n")
        self.assertEqual(codes(dave.take()), ["474"])
        # Not a nickname: someone else called dave is not matched.
        self.bob.send("NICK dave2\r\n")
        self.assertEqual(self.bob.take(), [":bob!bob@chatservice NICK :dave2"])

    def test_expiry(self) -> None:
        """
        A ban set to last (from the core: IRC's MODE sets none) lapses by
        the chat's clock: the list no longer shows it and its target may
        come in.
        """
        self.alice.send("MODE #chan +b bob\r\n")
        self.harness.chat.remove_mask(self.member(self.alice), self.room, "ban", "bob")
        self.harness.chat.add_mask(
            self.member(self.alice), self.room, "ban", "bob", duration=60
        )
        self.harness.turn()
        discard(self.alice, self.bob)
        self.bob.send("JOIN #chan\r\n")
        self.assertEqual(codes(self.bob.take()), ["474"])
        self.harness.advance(61)
        self.alice.send("MODE #chan b\r\n")
        self.assertEqual(codes(self.alice.take()), ["368"])
        self.bob.send("JOIN #chan\r\n")
        self.assertEqual(self.bob.take()[0], ":bob!bob@chatservice JOIN #chan")


class SpeakingTests(ModerationTestCase):
    def test_moderated(self) -> None:
        """In +m only operators and voiced members speak."""
        self.alice.send("MODE #chan +m\r\n")
        discard(self.alice, self.bob)
        self.bob.send("PRIVMSG #chan :one\r\nPRIVMSG #chan :two\r\n")
        refusal = (
            f"{SERVER} 404 bob #chan "
            ":Cannot send to channel (+m: only operators and voiced users)"
        )
        self.assertEqual(self.bob.take(), [refusal, refusal])
        self.assertEqual(self.alice.take(), [])
        self.alice.send("MODE #chan +v bob\r\n")
        self.bob.send("PRIVMSG #chan :three\r\n")
        self.assertEqual(
            self.alice.take()[-1], ":bob!bob@chatservice PRIVMSG #chan :three"
        )

    def test_muted(self) -> None:
        """A quiet silences whom it matches, till it lapses."""
        self.harness.chat.add_mask(
            self.member(self.alice), self.room, "quiet", "bob", duration=30
        )
        self.harness.turn()
        discard(self.alice, self.bob)
        self.bob.send("PRIVMSG #chan :hi\r\nNOTICE #chan :hi\r\n")
        self.assertEqual(
            self.bob.take(),
            [f"{SERVER} 404 bob #chan :Cannot send to channel (you are muted: +q)"],
        )
        self.assertEqual(self.alice.take(), [])
        self.harness.advance(31)
        self.bob.send("PRIVMSG #chan :back\r\n")
        self.assertEqual(
            self.alice.take(), [":bob!bob@chatservice PRIVMSG #chan :back"]
        )

    def test_outside(self) -> None:
        """
        Without +n anyone may speak to the channel from outside, unless
        banned; with it (the default) nobody.
        """
        self.carol.send("PRIVMSG #chan :knock\r\n")
        self.assertEqual(
            self.carol.take(),
            [
                f"{SERVER} 404 carol #chan "
                ":Cannot send to channel (+n: you are not on it)"
            ],
        )
        self.alice.send("MODE #chan -n\r\n")
        discard(self.alice, self.bob)
        self.carol.send("PRIVMSG #chan :knock\r\nNOTICE #chan :psst\r\n")
        self.assertEqual(self.carol.take(), [])
        self.assertEqual(
            self.bob.take(),
            [
                ":carol!carol@chatservice PRIVMSG #chan :knock",
                ":carol!carol@chatservice NOTICE #chan :psst",
            ],
        )
        self.alice.send("MODE #chan +b carol\r\n")
        self.carol.send("PRIVMSG #chan :knock\r\n")
        self.assertEqual(
            self.carol.take(),
            [f"{SERVER} 404 carol #chan :Cannot send to channel (you are banned: +b)"],
        )
        self.carol.send("PRIVMSG #nowhere :knock\r\n")
        self.assertEqual(codes(self.carol.take()), ["403"])


class JoinTests(ModerationTestCase):
    def test_refusals(self) -> None:
        """Each of the room's rules refuses with its numeric."""
        dave = self.client("dave")
        self.alice.send("MODE #chan +i\r\n")
        dave.send("JOIN #chan\r\n")
        self.assertEqual(
            dave.take(), [f"{SERVER} 473 dave #chan :Cannot join channel (+i)"]
        )
        self.alice.send("MODE #chan -i+k sesame\r\n")
        dave.send("JOIN #chan\r\nJOIN #chan wrong\r\n")
        refused = f"{SERVER} 475 dave #chan :Cannot join channel (+k)"
        self.assertEqual(dave.take(), [refused, refused])
        self.alice.send("MODE #chan -k+l * 2\r\n")
        dave.send("JOIN #chan\r\n")
        self.assertEqual(
            dave.take(), [f"{SERVER} 471 dave #chan :Cannot join channel (+l)"]
        )

    def test_keys(self) -> None:
        """JOIN #a,#b k1,k2 gives each channel the key in its place."""
        self.alice.send("JOIN #two,#three\r\nMODE #chan +k one\r\n")
        self.alice.send("MODE #three +k three\r\n")
        self.carol.send("JOIN #chan,#two,#three one,,three\r\n")
        joined = [line for line in self.carol.take() if " JOIN " in line]
        self.assertEqual(
            joined,
            [f":carol!carol@chatservice JOIN {c}" for c in ("#chan", "#two", "#three")],
        )


class InviteTests(ModerationTestCase):
    def test_invite(self) -> None:
        """
        An invitation is told to the one invited, confirmed with 341, and
        lets it past +i once.
        """
        self.alice.send("MODE #chan +i\r\n")
        discard(self.alice, self.bob)
        self.alice.send("INVITE carol #chan\r\n")
        self.assertEqual(self.alice.take(), [f"{SERVER} 341 alice carol #chan"])
        self.assertEqual(self.carol.take(), [f"{ALICE} INVITE carol #chan"])
        self.assertEqual(self.bob.take(), [])
        self.carol.send("INVITE\r\n")
        self.assertEqual(
            self.carol.take(),
            [f"{SERVER} 336 carol #chan", f"{SERVER} 337 carol :End of /INVITE list"],
        )
        self.carol.send("JOIN #chan\r\nPART #chan\r\nJOIN #chan\r\n")
        self.assertEqual(codes(self.carol.take())[-1], "473")

    def test_refusals(self) -> None:
        """
        INVITE is refused: 443 for a member, 442 from outside, 482 from a
        non-operator into +i, 401 for nobody, 403 for no channel, 461.
        """
        self.alice.send("INVITE bob #chan\r\n")
        self.assertEqual(
            self.alice.take(), [f"{SERVER} 443 alice bob #chan :is already on channel"]
        )
        self.carol.send("INVITE alice #chan\r\n")
        self.assertEqual(codes(self.carol.take()), ["442"])
        self.alice.send("MODE #chan +i\r\n")
        discard(self.alice, self.bob)
        self.bob.send("INVITE carol #chan\r\n")
        self.assertEqual(codes(self.bob.take()), ["482"])
        self.assertEqual(self.carol.take(), [])
        self.alice.send("INVITE nobody #chan\r\nINVITE carol #none\r\nINVITE x\r\n")
        self.assertEqual(codes(self.alice.take()), ["401", "403", "461"])
        self.assertEqual(self.room.invited, set())

    def test_secret(self) -> None:
        """An outsider learns nothing of a secret channel by INVITE."""
        self.alice.send("MODE #chan +s\r\n")
        self.carol.send("INVITE alice #chan\r\n")
        self.assertEqual(codes(self.carol.take()), ["442"])


class RegisteredTests(ModerationTestCase):
    def test_registrationAnnounced(self) -> None:
        """
        A room registered (from another front end: IRC has no command for
        it) is announced to the channel as a server notice.
        """
        member = self.member(self.alice)
        member.account = "alice"
        self.harness.chat.register_room(member, self.room)
        self.harness.turn()
        self.assertEqual(
            self.bob.take(),
            [
                f"{SERVER} NOTICE #chan :alice registered the channel to the "
                "account alice"
            ],
        )
        self.harness.chat.unregister_room(member, self.room)
        self.harness.turn()
        self.assertEqual(
            self.bob.take(), [f"{SERVER} NOTICE #chan :alice unregistered the channel"]
        )
