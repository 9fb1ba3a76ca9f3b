"""
The IRC front end in memory: registration, commands, numerics, and IRC and
line users in the same rooms.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatservice.frontends.irc.protocol import IRCProtocol, parse
from chatservice.frontends.irc.split import split
from chatservice.frontends.limits import Limits
from tests.support.memory import Connection, Harness, discard

SERVER = ":My.Little.Server"


def register(client: Connection, nick: str) -> list[str]:
    client.send(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n")
    return client.take()


def codes(lines: list[str]) -> list[str]:
    return [line.split(" ")[1] for line in lines if line.startswith(SERVER)]


class ParseTests(SynchronousTestCase):
    def test_parse(self) -> None:
        self.assertEqual(parse("privmsg #a :hi there"), ("PRIVMSG", ["#a", "hi there"]))
        self.assertEqual(parse(":src NICK bob"), ("NICK", ["bob"]))
        self.assertEqual(parse("@a=b PING x"), ("PING", ["x"]))
        self.assertEqual(parse("PRIVMSG #a ::)"), ("PRIVMSG", ["#a", ":)"]))
        self.assertEqual(parse("PRIVMSG #a :"), ("PRIVMSG", ["#a", ""]))
        self.assertIsNone(parse(""))
        self.assertIsNone(parse("   "))
        self.assertIsNone(parse(":only-a-source"))


class SplitTests(SynchronousTestCase):
    def test_short(self) -> None:
        self.assertEqual(split("hello", 10), ["hello"])

    def test_utf8Boundaries(self) -> None:
        text = "é" * 300
        pieces = split(text, 101)
        self.assertEqual("".join(pieces), text)
        for piece in pieces:
            self.assertLessEqual(len(piece.encode()), 101)

    def test_graphemes(self) -> None:
        family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
        text = ("ab" + family) * 40
        pieces = split(text, 30)
        self.assertEqual("".join(pieces), text)
        for piece in pieces:
            self.assertLessEqual(len(piece.encode()), 30)
            self.assertFalse(piece.endswith("\u200d"))
            self.assertFalse(piece.startswith("\u200d"))

    @given(st.text(max_size=300), st.integers(min_value=8, max_value=120))
    def test_anyText(self, text: str, limit: int) -> None:
        pieces = split(text, limit)
        self.assertEqual("".join(pieces), text)
        for piece in pieces:
            self.assertLessEqual(len(piece.encode("utf-8", "surrogatepass")), limit)


class RegistrationTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))

    def test_welcome(self) -> None:
        client = self.harness.connect_irc()
        lines = register(client, "alice")
        self.assertEqual(
            codes(lines),
            [
                *("001", "002", "003", "004", "005", "005"),
                *("251", "252", "254", "255", "265", "266", "422"),
            ],
        )
        self.assertEqual(
            lines[0],
            ":My.Little.Server 001 alice :Welcome to the chatservice IRC Network "
            "alice!alice@chatservice",
        )
        isupport = " ".join(line for line in lines if " 005 " in line)
        for token in [
            *("CASEMAPPING=", "CHANTYPES=#", "PREFIX=(ov)@+", "NETWORK="),
            *(" CHANMODES=bq,k,l,imnst ", " EXTBAN=$,a ", " MAXLIST=b:1000,q:1000 "),
        ]:
            self.assertIn(token, isupport)
        self.assertIn("alice", self.harness.chat.members)

    def test_capHoldsRegistration(self) -> None:
        client = self.harness.connect_irc()
        client.send("CAP LS 302\r\nNICK alice\r\nUSER a 0 * :A\r\n")
        self.assertEqual(len(client.take()), 1)
        client.send("CAP REQ :nonsense\r\n")
        self.assertEqual(client.take(), [":My.Little.Server CAP * NAK nonsense"])
        client.send("CAP END\r\n")
        self.assertEqual(codes(client.take())[0], "001")

    def test_beforeRegistration(self) -> None:
        client = self.harness.connect_irc()
        client.send("JOIN #a\r\nPING tok\r\n")
        self.assertEqual(
            client.take(),
            [
                ":My.Little.Server 451 * :You have not registered",
                ":My.Little.Server PONG My.Little.Server tok",
            ],
        )

    def test_nickProblems(self) -> None:
        register(self.harness.connect_irc(), "alice")
        client = self.harness.connect_irc()
        client.send("NICK ALICE\r\nNICK a[b]\r\nNICK\r\n")
        self.assertEqual(codes(client.take()), ["433", "432", "431"])
        self.assertEqual(codes(register(client, "bob"))[0], "001")

    def test_registrationTimesOut(self) -> None:
        client = self.harness.connect_irc()
        self.harness.advance(60)
        self.assertEqual(client.take(), ["ERROR :Closing link: Registration timed out"])
        self.assertTrue(client.transport.disconnecting)

    def test_quitBeforeRegistering(self) -> None:
        client = self.harness.connect_irc()
        client.send("QUIT :bye\r\n")
        self.assertEqual(client.take(), ["ERROR :Closing link: bye"])


class CommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        self.alice = self.harness.connect_irc()
        register(self.alice, "alice")

    def test_unknownCommand(self) -> None:
        self.alice.send("FROB x\r\n")
        self.assertEqual(
            self.alice.take(), [":My.Little.Server 421 alice FROB :Unknown command"]
        )

    def test_needMoreParams(self) -> None:
        self.alice.send("JOIN\r\nPRIVMSG\r\nPRIVMSG #a\r\n")
        self.assertEqual(codes(self.alice.take()), ["461", "411", "412"])

    def test_joinNamesPart(self) -> None:
        self.alice.send("JOIN #python,#rust\r\n")
        self.assertEqual(
            self.alice.take(),
            [
                ":alice!alice@chatservice JOIN #python",
                ":My.Little.Server 353 alice = #python @alice",
                ":My.Little.Server 366 alice #python :End of /NAMES list.",
                ":alice!alice@chatservice JOIN #rust",
                ":My.Little.Server 353 alice = #rust @alice",
                ":My.Little.Server 366 alice #rust :End of /NAMES list.",
            ],
        )
        self.alice.send("PART #rust\r\nPART #nowhere\r\nJOIN 0\r\n")
        self.assertEqual(
            self.alice.take(),
            [
                ":alice!alice@chatservice PART #rust",
                ":My.Little.Server 403 alice #nowhere :No such channel",
            ],
        )
        self.assertEqual(self.harness.chat.rooms, {})

    def test_errors(self) -> None:
        self.alice.send("PRIVMSG zed :hi\r\nPRIVMSG #nowhere :hi\r\nNOTICE zed :hi\r\n")
        self.assertEqual(codes(self.alice.take()), ["401", "403"])

    def test_overlongLine(self) -> None:
        self.alice.send("PRIVMSG #a :" + "x" * 600 + "\r\nPING ok\r\n")
        self.assertEqual(
            self.alice.take(),
            [
                ":My.Little.Server 417 alice :Input line was too long",
                ":My.Little.Server PONG My.Little.Server ok",
            ],
        )

    def test_queries(self) -> None:
        bob = self.harness.connect_irc()
        register(bob, "bob")
        self.alice.send("ISON bob zed\r\nUSERHOST bob\r\nAWAY :gone\r\n")
        self.assertEqual(
            self.alice.take(),
            [
                ":My.Little.Server 303 alice bob",
                ":My.Little.Server 302 alice bob=+bob@chatservice",
                ":My.Little.Server 306 alice :You have been marked as being away",
            ],
        )
        bob.send("PRIVMSG alice :hi\r\nWHOIS alice\r\n")
        self.assertEqual(codes(bob.take()), ["301", "311", "312", "301", "318"])

    def test_info(self) -> None:
        client = self.harness.connect_irc()
        register(client, "zed")
        client.send("INFO\r\nINFO *.little.*\r\nINFO ZED\r\nINFO elsewhere.example\r\n")
        lines = client.take()
        self.assertTrue(lines[0].startswith(f"{SERVER} 371 zed chatservice-"))
        self.assertEqual(codes(lines), ["371", "371", "371", "374"] * 3 + ["402"])
        self.assertEqual(lines[3], f"{SERVER} 374 zed :End of INFO list")
        self.assertEqual(
            lines[-1], f"{SERVER} 402 zed elsewhere.example :No such server"
        )

    def test_quit(self) -> None:
        bob = self.harness.connect_irc()
        register(bob, "bob")
        for client in (self.alice, bob):
            client.send("JOIN #a,#b\r\n")
        discard(self.alice, bob)
        bob.send("QUIT :later\r\n")
        self.assertEqual(bob.take(), ["ERROR :Closing link: bob"])
        # Once, though they shared two channels.
        self.assertEqual(self.alice.take(), [":bob!bob@chatservice QUIT :Quit: later"])

    def test_renameOnce(self) -> None:
        bob = self.harness.connect_irc()
        register(bob, "bob")
        for client in (self.alice, bob):
            client.send("JOIN #a,#b\r\n")
        discard(self.alice, bob)
        bob.send("NICK robert\r\n")
        self.assertEqual(self.alice.take(), [":bob!bob@chatservice NICK :robert"])

    def test_searchedOnlyAfterDepartures(self) -> None:
        """
        A client's output is searched for repeated QUIT and NICK lines only
        when a quit or rename was written since it was last searched; each
        rewrite of the bytes every member of a room shares is made once.
        """
        from chatservice.frontends.irc import protocol

        searched: list[bytes] = []
        real = protocol._needs_once

        def needs_once(data: bytes) -> bool:
            searched.append(data)
            return real(data)

        self.patch(protocol, "_needs_once", needs_once)
        bob = self.harness.connect_irc()
        register(bob, "bob")
        for client in (self.alice, bob):
            client.send("JOIN #a\r\n")
        discard(self.alice, bob)
        del searched[:]
        bob.send("PRIVMSG #a :hi\r\n")
        self.alice.take()
        self.assertEqual(searched, [])
        bob.send("NICK robert\r\n")
        self.alice.take()
        # Each client's next output: alice's, and bob's own NICK.
        self.assertEqual(searched, [b":bob!bob@chatservice NICK :robert\r\n"] * 2)
        bob.send("PRIVMSG #a :again\r\n")
        self.alice.take()
        self.assertEqual(len(searched), 2)

    def test_rewrittenOnce(self) -> None:
        from chatservice.frontends.irc.protocol import _once

        data = b":a!a@h QUIT :x\r\n:b!b@h PRIVMSG #c :y\r\n:a!a@h QUIT :x\r\n"
        once = _once(data)
        self.assertEqual(once, b":a!a@h QUIT :x\r\n:b!b@h PRIVMSG #c :y\r\n")
        self.assertIs(_once(data), once)
        self.assertEqual(_once(bytes(bytearray(data))), once)

    def test_idlePing(self) -> None:
        harness = Harness(Limits(flood_rate=0, idle_timeout=30))
        client = harness.connect_irc()
        register(client, "carol")
        harness.advance(30)
        self.assertEqual(client.take(), [":My.Little.Server PING My.Little.Server"])
        client.send("PONG My.Little.Server\r\n")
        harness.advance(30)
        self.assertEqual(client.take(), [":My.Little.Server PING My.Little.Server"])
        harness.advance(30)
        self.assertEqual(
            client.take()[0], "ERROR :Closing link: Ping timeout: 30 seconds"
        )


class MixedTests(SynchronousTestCase):
    """
    A line user and an IRC user in one room.
    """

    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        self.line = self.harness.connect()
        self.line.say("/nick bob")
        self.irc = self.harness.connect_irc()
        register(self.irc, "alice")
        self.irc.send("JOIN #lobby\r\n")
        discard(self.line, self.irc)

    def test_talk(self) -> None:
        self.line.say("hello")
        self.line.say("/me waves")
        self.irc.send(
            "PRIVMSG #lobby :hi bob\r\nPRIVMSG #lobby :\x01ACTION nods\x01\r\n"
        )
        self.assertEqual(
            self.irc.take(),
            [
                ":bob!bob@chatservice PRIVMSG #lobby :hello",
                ":bob!bob@chatservice PRIVMSG #lobby :\x01ACTION waves\x01",
            ],
        )
        self.assertEqual(
            self.line.take(), ["[lobby] <alice> hi bob", "[lobby] * alice nods"]
        )

    def test_private(self) -> None:
        self.line.say("/msg alice psst")
        self.irc.send("PRIVMSG bob :back\r\n")
        self.assertEqual(self.irc.take(), [":bob!bob@chatservice PRIVMSG alice :psst"])
        self.assertEqual(self.line.take(), ["*alice* back"])

    def test_renameAndJoin(self) -> None:
        self.line.say("/nick robert")
        self.irc.send("NICK alicia\r\n")
        self.assertEqual(self.irc.take()[0], ":bob!bob@chatservice NICK :robert")
        self.assertIn("[lobby] --- alice is now known as alicia", self.line.take())

    def test_formattingStripped(self) -> None:
        self.irc.send("PRIVMSG #lobby :\x0304red\x03 and \x02bold\x02\r\n")
        self.assertEqual(self.line.take(), ["[lobby] <alice> red and bold"])

    def test_longLineSplit(self) -> None:
        text = "ü" * 2000
        self.line.say(text)
        lines = self.irc.take()
        self.assertGreater(len(lines), 1)
        prefix = ":bob!bob@chatservice PRIVMSG #lobby :"
        for line in lines:
            self.assertTrue(line.startswith(prefix))
            self.assertLessEqual(len(line.encode()) + 2, 512)
        self.assertEqual("".join(line[len(prefix) :] for line in lines), text)


class HostileTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.binary(max_size=80), max_size=10))
    def test_nothingRaises(self, chunks: list[bytes]) -> None:
        harness = Harness(Limits(flood_rate=0))
        client = harness.connect_irc()
        for chunk in chunks:
            client.send(chunk)
        client.send(b"\r\nPING end\r\n")
        raw = client.transport.value()
        self.assertTrue(raw.endswith(b"\r\n") or raw == b"")


class OperatorTests(SynchronousTestCase):
    """
    Channel operators, topics and kicks, between IRC and line users.
    """

    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        self.alice = self.harness.connect_irc()
        register(self.alice, "alice")
        self.alice.send("JOIN #python\r\n")
        self.bob = self.harness.connect_irc()
        register(self.bob, "bob")
        self.bob.send("JOIN #python\r\n")
        self.line = self.harness.connect()
        self.line.say("/nick carol")
        self.line.say("/join python")
        discard(self.alice, self.bob, self.line)

    def test_creatorIsOperator(self) -> None:
        self.bob.send("NAMES #python\r\n")
        self.assertEqual(
            self.bob.take()[0], ":My.Little.Server 353 bob = #python :@alice bob carol"
        )

    def test_topic(self) -> None:
        self.bob.send("TOPIC #python :mine\r\n")
        self.assertEqual(codes(self.bob.take()), ["482"])
        self.alice.send("TOPIC #python :Snakes only\r\n")
        self.assertEqual(
            self.bob.take(), [":alice!alice@chatservice TOPIC #python :Snakes only"]
        )
        self.assertEqual(
            self.line.take(), ["[python] --- alice set the topic: Snakes only"]
        )
        self.bob.send("TOPIC #python\r\n")
        topic, when = self.bob.take()
        self.assertEqual(topic, ":My.Little.Server 332 bob #python :Snakes only")
        self.assertTrue(when.startswith(":My.Little.Server 333 bob #python alice!"))

    def test_kickAndOp(self) -> None:
        self.bob.send("KICK #python carol\r\n")
        self.assertEqual(codes(self.bob.take()), ["482"])
        self.alice.send("MODE #python +o bob\r\n")
        self.assertEqual(
            self.bob.take(), [":alice!alice@chatservice MODE #python +o bob"]
        )
        self.bob.send("KICK #python carol :be nice\r\n")
        self.assertEqual(
            self.alice.take()[-1],
            ":bob!bob@chatservice KICK #python carol :be nice",
        )
        self.assertIn(
            "[python] <-- carol was kicked by bob (be nice)", self.line.take()
        )

    def test_kickSeveral(self) -> None:
        self.alice.send("KICK #python bob,carol :bye\r\n")
        self.assertEqual(
            self.alice.take(),
            [
                ":alice!alice@chatservice KICK #python bob bye",
                ":alice!alice@chatservice KICK #python carol bye",
            ],
        )

    def test_kickPairs(self) -> None:
        self.alice.send("KICK #python,#nowhere bob,carol :bye\r\nKICK #a,#b x\r\n")
        self.assertEqual(
            self.alice.take(),
            [
                # The kick is out first: the one kicked must see it.
                ":alice!alice@chatservice KICK #python bob bye",
                ":My.Little.Server 403 alice #nowhere :No such channel",
                ":My.Little.Server 461 alice KICK :Not enough parameters",
            ],
        )

    def test_voice(self) -> None:
        self.alice.send("MODE #python +v bob\r\n")
        self.assertEqual(
            self.bob.take(), [":alice!alice@chatservice MODE #python +v bob"]
        )
        self.assertEqual(self.line.take(), ["[python] --- alice gave bob a voice"])
        # A voice is a mark, not a right to set the topic.
        self.bob.send("TOPIC #python :mine\r\nNAMES #python\r\nWHO #python\r\n")
        lines = self.bob.take()
        self.assertEqual(codes(lines)[0], "482")
        self.assertEqual(
            lines[1], ":My.Little.Server 353 bob = #python :@alice +bob carol"
        )
        self.assertTrue(lines[4].endswith(" bob H+ :0 bob"), lines[4])
        self.alice.send("MODE #python -v bob\r\n")
        self.assertEqual(
            self.bob.take(), [":alice!alice@chatservice MODE #python -v bob"]
        )

    def test_lineOperatorKicksIRCUser(self) -> None:
        self.alice.send("MODE #python +o carol\r\n")
        discard(self.alice, self.bob, self.line)
        self.line.say("/kick bob")
        self.line.say("/topic From the line")
        self.assertEqual(
            self.bob.take(), [":carol!carol@chatservice KICK #python bob carol"]
        )
        self.assertEqual(
            self.alice.take(),
            [
                ":carol!carol@chatservice KICK #python bob carol",
                ":carol!carol@chatservice TOPIC #python :From the line",
            ],
        )

    def test_modes(self) -> None:
        self.alice.send("MODE #python\r\nMODE #python -t\r\nMODE #python +x\r\n")
        created = int(self.harness.chat.rooms["python"].created)
        self.assertEqual(
            self.alice.take(),
            [
                ":My.Little.Server 324 alice #python +nt",
                f":My.Little.Server 329 alice #python {created}",
                # Replies go out at once, room events at the end of the turn.
                ":My.Little.Server 472 alice x :is unknown mode char to me",
                ":alice!alice@chatservice MODE #python -t",
            ],
        )


class GeneralPathOnly(IRCProtocol):
    """
    The IRC protocol without its shortcut for runs of PRIVMSGs.
    """

    def linesReceived(self, lines: list[bytes | None], start: int) -> int:
        return start


class ShortcutTests(SynchronousTestCase):
    """
    Runs of PRIVMSGs to one channel skip the parser; whatever the lines,
    every client sees exactly what the general path would show.
    """

    def outputs(self, protocol: type[IRCProtocol], lines: list[bytes]) -> list[bytes]:
        harness = Harness(Limits(flood_rate=0))
        listener = harness.connect_irc()
        assert harness.irc is not None
        harness.irc.protocol = protocol
        speaker = harness.connect_irc()
        assert type(speaker.proto) is protocol
        register(speaker, "alice")
        register(listener, "bob")
        speaker.send("JOIN #a,#b\r\n")
        listener.send("JOIN #a,#b\r\n")
        # What came before (003 says when the factory was made) is not
        # the lines' doing.
        discard(speaker, listener)
        speaker.send(b"".join(line + b"\r\n" for line in lines))
        return [speaker.transport.value(), listener.transport.value()]

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.binary(max_size=30).map(lambda b: b"PRIVMSG #a :" + b),
                st.sampled_from(
                    [
                        b"PRIVMSG #a :hi",
                        b"PRIVMSG #b :there",
                        b"PRIVMSG #c :nobody",
                        b"PRIVMSG #a,#b :both",
                        b"PRIVMSG #a :\x01ACTION waves\x01",
                        b"PRIVMSG #a :",
                        b"PRIVMSG #a extra :x",
                        b"PRIVMSG #a :\xff\xfe",
                        b"PRIVMSG #a :" + b"x" * 600,
                        b"PART #b",
                        b"privmsg #a :lower",
                    ]
                ),
            ).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")),
            max_size=8,
        )
    )
    def test_sameAsGeneralPath(self, lines: list[bytes]) -> None:
        self.assertEqual(
            self.outputs(IRCProtocol, lines), self.outputs(GeneralPathOnly, lines)
        )


class RFCDetailTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        self.alice = self.harness.connect_irc()
        register(self.alice, "alice")
        self.bob = self.harness.connect_irc()
        register(self.bob, "bob")
        for client in (self.alice, self.bob):
            client.send("JOIN #chan\r\n")
        discard(self.alice, self.bob)

    def test_partMessage(self) -> None:
        self.bob.send("PART #chan :bye everyone\r\n")
        self.assertEqual(
            self.bob.take(), [":bob!bob@chatservice PART #chan :bye everyone"]
        )
        self.assertEqual(
            self.alice.take(), [":bob!bob@chatservice PART #chan :bye everyone"]
        )

    def test_namesWithoutArguments(self) -> None:
        """
        NAMES alone lists every channel one may see, one's own or not, and
        ends once.
        """
        carol = self.harness.connect_irc()
        register(carol, "carol")
        carol.send("JOIN #other,#hidden\r\nMODE #hidden +s\r\n")
        self.alice.send("NAMES\r\n")
        self.assertEqual(
            self.alice.take(),
            [
                ":My.Little.Server 353 alice = #chan :@alice bob",
                ":My.Little.Server 353 alice = #other @carol",
                ":My.Little.Server 366 alice * :End of /NAMES list.",
            ],
        )

    def test_namesSeveral(self) -> None:
        self.alice.send("JOIN #two\r\n")
        discard(self.alice)
        self.alice.send("NAMES #chan,#nowhere,#two\r\nNAMES #nowhere\r\n")
        self.assertEqual(
            self.alice.take(),
            [
                ":My.Little.Server 353 alice = #chan :@alice bob",
                ":My.Little.Server 353 alice = #two @alice",
                ":My.Little.Server 366 alice #chan,#nowhere,#two :End of /NAMES list.",
                ":My.Little.Server 366 alice #nowhere :End of /NAMES list.",
            ],
        )

    def test_secret(self) -> None:
        """
        A secret channel (+s) is marked @ in NAMES, and hidden from who is
        not in it: NAMES, WHO and LIST show nothing of it.
        """
        self.alice.send("MODE #chan +s\r\nMODE #chan\r\n")
        self.assertEqual(self.bob.take(), [":alice!alice@chatservice MODE #chan +s"])
        lines = self.alice.take()
        self.assertEqual(lines[0], ":My.Little.Server 324 alice #chan +nst")
        self.assertEqual(codes(lines), ["324", "329"])
        self.assertEqual(lines[-1], ":alice!alice@chatservice MODE #chan +s")
        self.bob.send("NAMES #chan\r\n")
        self.assertEqual(
            self.bob.take()[0], ":My.Little.Server 353 bob @ #chan :@alice bob"
        )
        carol = self.harness.connect_irc()
        register(carol, "carol")
        carol.send("NAMES #chan\r\nWHO #chan\r\nLIST\r\nWHOIS alice\r\n")
        carol.send("MODE #chan\r\nMODE #chan b\r\nNAMES\r\nWHO *\r\n")
        lines = carol.take()
        self.assertEqual(
            lines[:4],
            [
                ":My.Little.Server 366 carol #chan :End of /NAMES list.",
                ":My.Little.Server 315 carol #chan :End of /WHO list.",
                ":My.Little.Server 321 carol Channel :Users  Name",
                ":My.Little.Server 323 carol :End of /LIST",
            ],
        )
        # Nor WHOIS, MODE (the channel is no channel to carol), NAMES of
        # every channel, WHO of everyone.
        self.assertNotIn("#chan", "".join(lines[4:]).replace(" #chan :No such", ""))
        self.assertEqual(
            codes(lines[4:]),
            ["311", "312", "318", "403", "403", "366", *["352"] * 3, "315"],
        )
        self.bob.send("MODE #chan -s\r\n")
        self.assertEqual(codes(self.bob.take()), ["482"])

    def test_emptyRealname(self) -> None:
        client = self.harness.connect_irc()
        client.send("NICK carol\r\nUSER carol 0 * :\r\n")
        self.assertEqual(codes(client.take()), ["461"])


class WhoTests(SynchronousTestCase):
    """
    WHO and WHOIS show what a client gave in USER, and channel status.
    """

    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        self.alice = self.harness.connect_irc()
        self.alice.send(b"NICK Alice\r\nUSER auser 0 * :Alice \xe8 Liddell\r\n")
        self.bob = self.harness.connect_irc()
        register(self.bob, "bob")
        self.alice.send("JOIN #chan\r\n")
        self.bob.send("JOIN #chan\r\n")
        discard(self.alice, self.bob)

    def test_whois(self) -> None:
        self.bob.send("WHOIS alice\r\n")
        self.assertEqual(
            self.bob.take()[0],
            ":My.Little.Server 311 bob Alice auser chatservice * :Alice \ufffd Liddell",
        )

    def test_whoChannel(self) -> None:
        self.alice.send("AWAY :out\r\n")
        discard(self.alice)
        self.bob.send("WHO #CHAN\r\n")
        self.assertEqual(
            self.bob.take(),
            [
                ":My.Little.Server 352 bob #chan auser chatservice My.Little.Server"
                " Alice G@ :0 Alice \ufffd Liddell",
                ":My.Little.Server 352 bob #chan bob chatservice My.Little.Server"
                " bob H :0 bob",
                ":My.Little.Server 315 bob #CHAN :End of /WHO list.",
            ],
        )

    def test_whoMasks(self) -> None:
        for mask, found in [
            ("alice", ["Alice"]),
            ("ALICE", ["Alice"]),
            ("al?c*", ["Alice"]),
            ("*", ["Alice", "bob"]),
            ("0", ["Alice", "bob"]),
            ("x*", []),
        ]:
            self.bob.send(f"WHO {mask}\r\n")
            lines = self.bob.take()
            self.assertEqual([line.split(" ")[7] for line in lines[:-1]], found)
            self.assertEqual(
                lines[-1], f":My.Little.Server 315 bob {mask} :End of /WHO list."
            )

    def test_whoOutsideChannels(self) -> None:
        carol = self.harness.connect_irc()
        register(carol, "carol")
        carol.send("WHO alice\r\n")
        self.assertEqual(
            carol.take()[0],
            ":My.Little.Server 352 carol * auser chatservice My.Little.Server"
            " Alice H :0 Alice \ufffd Liddell",
        )

    def test_whoisChannels(self) -> None:
        """
        WHOIS marks the channels where one is operator or has a voice, and
        leaves out a secret channel the asker is not in.
        """
        self.alice.send("JOIN #two,#hidden\r\nMODE #hidden +s\r\n")
        self.alice.send("MODE #chan +v bob\r\n")
        self.bob.send("JOIN #two\r\n")
        discard(self.bob)
        self.bob.send("WHOIS alice\r\nWHOIS bob\r\n")
        lines = [line for line in self.bob.take() if " 319 " in line]
        self.assertEqual(
            lines,
            [
                ":My.Little.Server 319 bob Alice :@#chan @#two",
                ":My.Little.Server 319 bob bob :+#chan #two",
            ],
        )

    def test_lusersMost(self) -> None:
        carol = self.harness.connect_irc()
        register(carol, "carol")
        carol.send("QUIT\r\n")
        self.bob.send("LUSERS\r\n")
        self.assertIn(
            ":My.Little.Server 266 bob 2 3 :Current global users 2, max 3",
            self.bob.take(),
        )

    def test_lineMember(self) -> None:
        line = self.harness.connect()
        line.say("/nick dave")
        self.bob.send("WHOIS dave\r\n")
        self.assertEqual(
            self.bob.take()[0],
            ":My.Little.Server 311 bob dave dave chatservice * dave",
        )


class InvalidUtf8Tests(SynchronousTestCase):
    """
    A line that is not UTF-8 (the server says UTF8ONLY) has its bad bytes
    replaced, as in the line protocol, is carried out, and draws WARN
    INVALID_UTF8 (the specification's code for a message modified but
    accepted).
    """

    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        self.alice = self.harness.connect_irc()
        register(self.alice, "alice")
        self.bob = self.harness.connect_irc()
        register(self.bob, "bob")
        discard(self.alice, self.bob)

    def test_privmsg(self) -> None:
        self.alice.send(b"PRIVMSG bob :hi\xaa\r\n")
        self.assertEqual(
            self.alice.take(),
            [
                ":My.Little.Server WARN PRIVMSG INVALID_UTF8 :Invalid UTF-8"
                " replaced; your IRC software must use UTF-8 on this network"
            ],
        )
        self.assertEqual(
            self.bob.take(), [":alice!alice@chatservice PRIVMSG bob :hi\ufffd"]
        )

    def test_channel(self) -> None:
        """
        A run of PRIVMSGs to a channel, which takes a shortcut, warns too.
        """
        self.alice.send("JOIN #a\r\n")
        self.bob.send("JOIN #a\r\n")
        discard(self.alice, self.bob)
        self.alice.send(b"PRIVMSG #a :one\r\nPRIVMSG #a :\xff\r\nPRIVMSG #a :3\r\n")
        self.assertEqual(codes(self.alice.take()), ["WARN"])
        self.assertEqual(
            self.bob.take(),
            [
                ":alice!alice@chatservice PRIVMSG #a :one",
                ":alice!alice@chatservice PRIVMSG #a :\ufffd",
                ":alice!alice@chatservice PRIVMSG #a :3",
            ],
        )

    def test_notice(self) -> None:
        self.alice.send(b"NOTICE bob :hi\xaa\r\n")
        self.assertEqual(self.alice.take(), [])
        self.assertEqual(
            self.bob.take(), [":alice!alice@chatservice NOTICE bob :hi\ufffd"]
        )

    def test_registering(self) -> None:
        client = self.harness.connect_irc()
        client.send(b"NICK carol\r\nUSER carol 0 * :\xe8\r\n")
        lines = client.take()
        self.assertTrue(lines[0].startswith(f"{SERVER} WARN USER INVALID_UTF8 :"))
        self.assertEqual(codes(lines[1:2]), ["001"])


class InvisibleTests(SynchronousTestCase):
    """
    User mode +i, which irssi asks for on connecting: answered with the
    change, shown by MODE, and hiding the user from who shares no channel
    with it.
    """

    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        self.evan = self.harness.connect_irc()
        register(self.evan, "evan")
        self.sam = self.harness.connect_irc()
        register(self.sam, "sam")
        self.evan.send("JOIN #chan\r\n")
        discard(self.evan, self.sam)

    def test_mode(self) -> None:
        self.evan.send("MODE evan +i\r\nMODE evan\r\nMODE evan +i\r\n")
        self.assertEqual(
            self.evan.take(),
            [
                ":evan!evan@chatservice MODE evan +i",
                ":My.Little.Server 221 evan +i",
            ],
        )
        self.evan.send("MODE evan -i+x\r\nMODE evan\r\n")
        self.assertEqual(
            self.evan.take(),
            [
                ":evan!evan@chatservice MODE evan -i",
                ":My.Little.Server 501 evan :Unknown MODE flag",
                ":My.Little.Server 221 evan +",
            ],
        )

    def test_lusers(self) -> None:
        self.evan.send("MODE evan +i\r\n")
        self.sam.send("LUSERS\r\n")
        self.assertEqual(
            self.sam.take()[0],
            ":My.Little.Server 251 sam :There are 1 users and 1 invisible on 1 servers",
        )
        self.evan.send("QUIT\r\n")
        self.sam.send("LUSERS\r\n")
        self.assertEqual(
            self.sam.take()[0],
            ":My.Little.Server 251 sam :There are 1 users and 0 invisible on 1 servers",
        )

    def whos(self, client: Connection, command: str) -> list[str]:
        client.send(command + "\r\n")
        return [line.split(" ")[7] for line in client.take() if " 352 " in line]

    def test_hidden(self) -> None:
        self.evan.send("MODE evan +i\r\n")
        discard(self.evan)
        self.assertEqual(self.whos(self.sam, "WHO eva*"), [])
        self.assertEqual(self.whos(self.sam, "WHO *"), ["sam"])
        self.assertEqual(self.whos(self.sam, "WHO #chan"), [])
        # By its nickname, it is found.
        self.assertEqual(self.whos(self.sam, "WHO evan"), ["evan"])
        # It sees itself.
        self.assertEqual(self.whos(self.evan, "WHO eva*"), ["evan"])
        self.sam.send("NAMES #chan\r\nWHOIS evan\r\n")
        lines = self.sam.take()
        self.assertEqual(
            codes(lines), ["366", "311", "312", "318"], "no 353 names, no 319"
        )

    def test_sharingAChannel(self) -> None:
        self.evan.send("MODE evan +i\r\nJOIN #other\r\n")
        self.sam.send("JOIN #chan\r\n")
        discard(self.evan, self.sam)
        self.assertEqual(self.whos(self.sam, "WHO eva*"), ["evan"])
        self.assertEqual(self.whos(self.sam, "WHO #chan"), ["evan", "sam"])
        self.sam.send("WHOIS evan\r\n")
        self.assertIn(
            ":My.Little.Server 319 sam evan @#chan",
            self.sam.take(),
        )


class WhowasTests(SynchronousTestCase):
    """
    WHOWAS shows who had a nickname, newest first, from what they gave in
    USER.
    """

    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        self.alice = self.harness.connect_irc()
        register(self.alice, "alice")
        discard(self.alice)
        # The chat dates departures by the harness's clock, from 0.
        self.harness.chat.clock = self.harness.clock.seconds

    def leave(self, user: str, realname: str) -> None:
        bob = self.harness.connect_irc()
        bob.send(f"NICK bob\r\nUSER {user} 0 * :{realname}\r\nQUIT\r\n")

    def test_history(self) -> None:
        self.leave("first", "The First")
        self.harness.advance(60)
        self.leave("second", "The Second")
        self.alice.send("WHOWAS BOB\r\n")
        self.assertEqual(
            self.alice.take(),
            [
                ":My.Little.Server 314 alice bob second chatservice * :The Second",
                ":My.Little.Server 312 alice bob My.Little.Server"
                " :Thu Jan 01 00:01:00 1970",
                ":My.Little.Server 314 alice bob first chatservice * :The First",
                ":My.Little.Server 312 alice bob My.Little.Server"
                " :Thu Jan 01 00:00:00 1970",
                ":My.Little.Server 369 alice BOB :End of WHOWAS",
            ],
        )

    def test_count(self) -> None:
        self.leave("first", "The First")
        self.leave("second", "The Second")
        for count, found in [("1", 1), ("2", 2), ("0", 2), ("-1", 2), ("x", 2)]:
            self.alice.send(f"WHOWAS bob {count}\r\n")
            self.assertEqual(codes(self.alice.take()).count("314"), found)

    def test_renamed(self) -> None:
        """
        A nickname left for another is remembered too; a line user gave no
        user name or real name, and is shown by its nickname.
        """
        line = self.harness.connect()
        line.say("/nick dave")
        line.say("/nick david")
        self.alice.send("WHOWAS dave\r\n")
        self.assertEqual(
            self.alice.take()[0],
            ":My.Little.Server 314 alice dave dave chatservice * dave",
        )

    def test_noSuchNick(self) -> None:
        self.alice.send("WHOWAS nobody\r\nWHOWAS\r\n")
        self.assertEqual(
            self.alice.take(),
            [
                ":My.Little.Server 406 alice nobody :There was no such nickname",
                ":My.Little.Server 369 alice nobody :End of WHOWAS",
                ":My.Little.Server 431 alice :No nickname given",
            ],
        )


class TooLongToRelayTests(SynchronousTestCase):
    """
    IRC input that fits 512 bytes but would not once the sender's prefix is
    added is refused with 417; text from line users is cut instead.
    """

    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        self.alice = self.harness.connect_irc()
        register(self.alice, "alice")
        self.bob = self.harness.connect_irc()
        register(self.bob, "bob")
        for client in (self.alice, self.bob):
            client.send("JOIN #chan\r\n")
        discard(self.alice, self.bob)
        # ":alice!alice@chatservice PRIVMSG bob :" and CRLF
        self.room = 512 - len(":alice!alice@chatservice PRIVMSG bob :\r\n")

    def test_privateFits(self) -> None:
        self.alice.send(f"PRIVMSG bob :{'a' * self.room}\r\n")
        self.assertEqual(self.alice.take(), [])
        [line] = self.bob.take()
        self.assertEqual(len(line.encode()) + 2, 512)

    def test_privateTooLong(self) -> None:
        self.alice.send(f"PRIVMSG bob :{'a' * (self.room - 3)}😃\r\n")
        self.assertEqual(
            self.alice.take(), [":My.Little.Server 417 alice :Input line was too long"]
        )
        self.assertEqual(self.bob.take(), [])

    def test_channelTooLong(self) -> None:
        # "#chan" is two bytes longer than "bob": what fits, then one more.
        text = "a" * (self.room - 1)
        self.alice.send(f"PRIVMSG #chan :{text[:-1]}\r\nPRIVMSG #chan :{text}\r\n")
        self.assertEqual(
            self.alice.take(), [":My.Little.Server 417 alice :Input line was too long"]
        )
        self.assertEqual(len(self.bob.take()), 1)

    def test_noticeIsCut(self) -> None:
        self.alice.send(f"NOTICE #chan :{'a' * self.room}\r\n")
        self.assertEqual(self.alice.take(), [])
        self.assertEqual(len(self.bob.take()), 2)


class ListTests(SynchronousTestCase):
    """
    LIST's filters (ELIST=CMNTU): masks, member counts, and how many
    minutes ago a room was made or its topic set.
    """

    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        self.now = 1_800_000_000.0
        self.harness.chat.clock = lambda: self.now
        self.alice = self.harness.connect_irc()
        register(self.alice, "alice")
        self.alice.send("JOIN #chan1\r\nTOPIC #chan1 :first\r\n")
        self.now += 180
        self.alice.send("JOIN #chan2\r\nTOPIC #chan2 :second\r\n")
        bob = self.harness.connect_irc()
        register(bob, "bob")
        bob.send("JOIN #chan2\r\n")
        self.now += 60
        discard(self.alice)

    def listed(self, terms: str) -> list[str]:
        self.alice.send(f"LIST {terms}\r\n")
        return [line.split(" ")[3] for line in self.alice.take()[1:-1]]

    def test_masks(self) -> None:
        self.assertEqual(self.listed("*an1"), ["#chan1"])
        self.assertEqual(self.listed("#C*N2"), ["#chan2"])
        self.assertEqual(self.listed("#chan1,#chan2"), ["#chan2", "#chan1"])
        self.assertEqual(self.listed("*an3"), [])
        self.assertEqual(self.listed("!*an1"), ["#chan2"])
        self.assertEqual(self.listed("!#ch*"), [])

    def test_members(self) -> None:
        self.assertEqual(self.listed(">1"), ["#chan2"])
        self.assertEqual(self.listed("<2"), ["#chan1"])
        self.assertEqual(self.listed("<1"), [])

    def test_times(self) -> None:
        self.assertEqual(self.listed("C>2"), ["#chan1"])
        self.assertEqual(self.listed("C<2"), ["#chan2"])
        self.assertEqual(self.listed("C<0"), [])
        self.assertEqual(self.listed("T>2"), ["#chan1"])
        self.assertEqual(self.listed("T<10"), ["#chan2", "#chan1"])
        self.assertEqual(self.listed("T<10,>1"), ["#chan2"])

    def test_isupport(self) -> None:
        client = self.harness.connect_irc()
        self.assertTrue(any(" ELIST=CMNTU " in line for line in register(client, "x")))
