"""
IRCv3 capabilities in memory: negotiation, and what each capability
changes in what a client is sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatservice.core.events import Event
from chatservice.core.history import History
from chatservice.frontends.irc import caps, tags
from chatservice.frontends.irc.renderer import IRCRenderer
from chatservice.frontends.limits import Limits
from tests.support.memory import Connection, Harness, discard

SERVER = ":My.Little.Server"
TIME = re.compile(r"^@time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z[ ;]")


def register(client: Connection, nick: str, *wanted: str) -> list[str]:
    """
    Register C{client} as C{nick}, negotiating C{wanted} first.
    """
    if wanted:
        client.send(f"CAP LS 302\r\nCAP REQ :{' '.join(wanted)}\r\n")
    client.send(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nCAP END\r\n")
    return client.take()


def untagged(line: str) -> str:
    return line.partition(" ")[2] if line.startswith("@") else line


def tags_of(line: str) -> dict[str, str]:
    return tags.parse(line[1:].partition(" ")[0]) if line.startswith("@") else {}


class NegotiationTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        self.client = self.harness.connect_irc()

    def test_lsWithoutVersion(self) -> None:
        self.client.send("CAP LS\r\n")
        (reply,) = self.client.take()
        self.assertEqual(
            reply, f"{SERVER} CAP * LS :" + " ".join(caps.offered(self.harness.irc))
        )
        self.client.send("CAP LIST\r\n")
        self.assertEqual(self.client.take(), [f"{SERVER} CAP * LIST :"])

    def test_ls302ImpliesCapNotify(self) -> None:
        self.client.send("CAP LS 302\r\nCAP LIST\r\n")
        self.assertEqual(self.client.take()[-1], f"{SERVER} CAP * LIST cap-notify")
        self.client.send("CAP REQ :-cap-notify\r\n")
        self.assertEqual(self.client.take(), [f"{SERVER} CAP * NAK -cap-notify"])

    def test_valuesWith302(self) -> None:
        # A capability with a value shows it to 302 clients only: one entry
        # in the table, as sasl will be.
        self.patch(
            caps,
            "CAPABILITIES",
            {**caps.CAPABILITIES, "sasl": caps.Capability("sasl", "PLAIN")},
        )
        client = self.harness.connect_irc()
        client.send("CAP LS\r\n")
        self.assertIn(" sasl", client.take()[0])
        client.send("CAP LS 302\r\n")
        self.assertIn(" sasl=PLAIN", client.take()[0])
        client.send("CAP REQ sasl\r\nCAP LIST\r\n")
        self.assertEqual(
            client.take(),
            [f"{SERVER} CAP * ACK sasl", f"{SERVER} CAP * LIST :cap-notify sasl"],
        )

    def test_reqIsAllOrNothing(self) -> None:
        self.client.send("CAP REQ :server-time nonsense\r\nCAP LIST\r\n")
        self.assertEqual(
            self.client.take(),
            [
                f"{SERVER} CAP * NAK :server-time nonsense",
                f"{SERVER} CAP * LIST :",
            ],
        )
        self.client.send("CAP REQ :batch echo-message\r\nCAP REQ -batch\r\n")
        self.client.send("CAP LIST\r\n")
        self.assertEqual(
            self.client.take(),
            [
                f"{SERVER} CAP * ACK :batch echo-message",
                f"{SERVER} CAP * ACK -batch",
                f"{SERVER} CAP * LIST echo-message",
            ],
        )

    def test_negotiationHoldsRegistration(self) -> None:
        self.client.send("CAP LS 302\r\nNICK a\r\nUSER a 0 * :a\r\n")
        self.client.send("CAP REQ :multi-prefix\r\n")
        self.assertIsNone(self.client.proto.member)
        self.client.send("CAP END\r\n")
        self.assertIsNotNone(self.client.proto.member)

    def test_reqAloneHoldsRegistration(self) -> None:
        self.client.send("CAP REQ :multi-prefix\r\nNICK a\r\nUSER a 0 * :a\r\n")
        self.assertIsNone(self.client.proto.member)
        self.client.send("CAP END\r\n")
        self.assertIsNotNone(self.client.proto.member)

    def test_invalidSubcommand(self) -> None:
        self.client.send("CAP BOGUS\r\n")
        self.assertEqual(
            self.client.take(), [f"{SERVER} 410 * BOGUS :Invalid CAP command"]
        )


class UserhostInNamesTests(SynchronousTestCase):
    def test_names(self) -> None:
        harness = Harness(Limits(flood_rate=0))
        client = harness.connect_irc()
        register(client, "alice", "userhost-in-names")
        client.send("JOIN #a\r\n")
        self.assertIn(
            f"{SERVER} 353 alice = #a @alice!alice@chatservice", client.take()
        )


class ServerTimeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))

    def test_everyLine(self) -> None:
        timed = self.harness.connect_irc()
        lines = register(timed, "alice", "server-time")
        # CAP LS, then the ACK, written before the capability was on.
        self.assertEqual(untagged(lines[1]), f"{SERVER} CAP * ACK server-time")
        for line in lines[2:]:
            self.assertRegex(line, TIME)
        plain = self.harness.connect_irc()
        register(plain, "bob")
        for client in (timed, plain):
            client.send("JOIN #a\r\n")
        discard(timed, plain)
        plain.send("PRIVMSG #a :hello\r\n")
        (line,) = timed.take()
        self.assertRegex(line, TIME)
        self.assertEqual(untagged(line), ":bob!bob@chatservice PRIVMSG #a :hello")
        timed.send("PRIVMSG #a :hi\r\n")
        self.assertEqual(plain.take(), [":alice!alice@chatservice PRIVMSG #a :hi"])

    def test_afterRegistration(self) -> None:
        """
        A member that asks for server-time once in a room is re-grouped:
        the room renders for it with the new renderer from then on.
        """
        alice = self.harness.connect_irc()
        register(alice, "alice")
        bob = self.harness.connect_irc()
        register(bob, "bob")
        for client in (alice, bob):
            client.send("JOIN #a\r\n")
        discard(alice, bob)
        bob.send("PRIVMSG #a :before\r\n")
        alice.send("CAP REQ server-time\r\n")
        lines = alice.take()
        # What was said before comes as it was rendered then.
        self.assertEqual(lines[0], ":bob!bob@chatservice PRIVMSG #a :before")
        self.assertEqual(untagged(lines[1]), f"{SERVER} CAP alice ACK server-time")
        room = self.harness.chat.rooms["a"]
        self.assertEqual(len(room.by_renderer), 2)
        bob.send("PRIVMSG #a :after\r\n")
        (line,) = alice.take()
        self.assertRegex(line, TIME)
        alice.send("CAP REQ -server-time\r\n")
        alice.take()
        self.assertEqual(len(room.by_renderer), 1)
        bob.send("PRIVMSG #a :plain again\r\n")
        self.assertEqual(alice.take(), [":bob!bob@chatservice PRIVMSG #a :plain again"])

    def test_quitOnceWithTags(self) -> None:
        alice = self.harness.connect_irc()
        register(alice, "alice", "server-time")
        bob = self.harness.connect_irc()
        register(bob, "bob")
        for client in (alice, bob):
            client.send("JOIN #a,#b\r\n")
        discard(alice, bob)
        bob.send("QUIT :bye\r\n")
        lines = alice.take()
        self.assertEqual(
            [untagged(line) for line in lines],
            [":bob!bob@chatservice QUIT :Quit: bye"],
        )


class RenderOnceTests(SynchronousTestCase):
    def counting(
        self, renderer: IRCRenderer, rendered: list[IRCRenderer]
    ) -> Callable[[Event], bytes]:
        original = renderer.render

        def render(event: Event) -> bytes:
            rendered.append(renderer)
            return original(event)

        return render

    def test_oncePerCapabilitySet(self) -> None:
        """
        A room's line is rendered once for each set of rendering
        capabilities among its members, whatever their number.
        """
        harness = Harness(Limits(flood_rate=0))
        sets = [(), ("server-time",), ("server-time", "message-tags")]
        clients = []
        for number in range(9):
            client = harness.connect_irc()
            register(client, f"u{number}", *sets[number % 3])
            client.send("JOIN #a\r\n")
            clients.append(client)
        speaker = harness.connect_irc()
        register(speaker, "speaker")
        speaker.send("JOIN #a\r\n")
        discard(*clients, speaker)
        assert harness.irc is not None
        rendered: list[IRCRenderer] = []
        for renderer in harness.irc._renderers.values():
            renderer.render = self.counting(renderer, rendered)  # type: ignore[method-assign, assignment]
        speaker.send("PRIVMSG #a :one\r\nPRIVMSG #a :two\r\n")
        self.assertEqual(len(harness.chat.rooms["a"].by_renderer), 3)
        # Two lines, three kinds of client: six renders, not twenty.
        self.assertEqual(len(rendered), 6)
        self.assertEqual(len(set(map(id, rendered))), 3)
        for number, client in enumerate(clients):
            lines = client.take()
            self.assertEqual(len(lines), 2)
            self.assertEqual(bool(TIME.match(lines[0])), number % 3 > 0)


class MessageTagsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        self.alice = self.harness.connect_irc()
        register(self.alice, "alice", "message-tags")
        self.bob = self.harness.connect_irc()
        register(self.bob, "bob", "message-tags", "echo-message")
        self.carol = self.harness.connect_irc()
        register(self.carol, "carol")
        self.line = self.harness.connect()
        for client in (self.alice, self.bob, self.carol):
            client.send("JOIN #a\r\n")
        self.line.say("/join a")
        discard(self.alice, self.bob, self.carol, self.line)

    def test_clientTagsRelayed(self) -> None:
        self.alice.send("@+reply=x;secret=1 PRIVMSG #a :hi\r\n")
        (line,) = self.bob.take()
        found = tags_of(line)
        self.assertEqual(found["+reply"], "x")
        self.assertIn("msgid", found)
        self.assertNotIn("secret", found)
        self.assertEqual(self.carol.take(), [":alice!alice@chatservice PRIVMSG #a :hi"])
        self.assertEqual(self.line.take(), ["[a] <alice> hi"])
        self.assertEqual(self.alice.take(), [])

    def test_echoHasTheSameMsgid(self) -> None:
        self.bob.send("@+a=b\\sc PRIVMSG #a :hey\r\n")
        (echo,) = self.bob.take()
        (relay,) = self.alice.take()
        self.assertEqual(tags_of(echo), tags_of(relay))
        self.assertEqual(tags_of(echo)["+a"], "b c")

    def test_tagmsg(self) -> None:
        self.bob.send("@+typing=active;x=y TAGMSG #a\r\n")
        (echo,) = self.bob.take()
        (relay,) = self.alice.take()
        self.assertEqual(untagged(relay), ":bob!bob@chatservice TAGMSG #a")
        self.assertEqual(tags_of(relay)["+typing"], "active")
        self.assertNotIn("x", tags_of(relay))
        self.assertEqual(tags_of(echo), tags_of(relay))
        self.assertEqual(self.carol.take(), [])
        self.assertEqual(self.line.take(), [])

    def test_privateTagmsg(self) -> None:
        self.bob.send("@+typing=active TAGMSG alice\r\nTAGMSG carol\r\n")
        (relay,) = self.alice.take()
        self.assertEqual(untagged(relay), ":bob!bob@chatservice TAGMSG alice")
        self.assertEqual(self.carol.take(), [])
        self.assertEqual(len(self.bob.take()), 2)

    def test_privateTagsAndEcho(self) -> None:
        self.bob.send("@+draft/reply=1 PRIVMSG alice :psst\r\n")
        (echo,) = self.bob.take()
        (relay,) = self.alice.take()
        self.assertEqual(untagged(echo), ":bob!bob@chatservice PRIVMSG alice :psst")
        self.assertEqual(untagged(relay), untagged(echo))
        self.assertEqual(tags_of(relay), tags_of(echo))
        self.assertEqual(tags_of(relay)["+draft/reply"], "1")
        self.bob.send("@+draft/reply=1 PRIVMSG carol :psst\r\n")
        self.assertEqual(
            self.carol.take(), [":bob!bob@chatservice PRIVMSG carol :psst"]
        )

    def test_tagLimits(self) -> None:
        most = "@+a=" + "x" * (tags.CLIENT_TAGS_MAX - 3)
        self.assertEqual(len(most), tags.CLIENT_TAGS_MAX + 1)
        self.bob.send(most + " TAGMSG #a\r\n")
        (relay,) = self.alice.take()
        self.assertEqual(len(tags_of(relay)["+a"]), tags.CLIENT_TAGS_MAX - 3)
        self.bob.take()
        self.bob.send(most + "x TAGMSG #a\r\n")
        self.assertEqual(
            [untagged(line) for line in self.bob.take()],
            [f"{SERVER} 417 bob :Input line was too long"],
        )
        self.assertEqual(self.alice.take(), [])
        # The line after the tags has 510 bytes of its own.
        self.bob.send("@+a=b PRIVMSG #a :" + "y" * 600 + "\r\n")
        self.assertEqual(
            [untagged(line) for line in self.bob.take()],
            [f"{SERVER} 417 bob :Input line was too long"],
        )
        self.assertEqual(self.alice.take(), [])

    def test_untaggedLineTooLong(self) -> None:
        self.carol.send("PRIVMSG #a :" + "y" * 600 + "\r\n")
        self.assertEqual(
            self.carol.take(), [f"{SERVER} 417 carol :Input line was too long"]
        )
        self.assertEqual(self.alice.take(), [])


class EchoMessageTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        self.alice = self.harness.connect_irc()
        register(self.alice, "alice", "echo-message")
        self.bob = self.harness.connect_irc()
        register(self.bob, "bob")
        for client in (self.alice, self.bob):
            client.send("JOIN #a\r\n")
        discard(self.alice, self.bob)

    def test_channel(self) -> None:
        self.alice.send(
            "PRIVMSG #a :hi\r\nNOTICE #a :note\r\nPRIVMSG #a :\x01ACTION waves\x01\r\n"
        )
        expected = [
            ":alice!alice@chatservice PRIVMSG #a :hi",
            ":alice!alice@chatservice NOTICE #a :note",
            ":alice!alice@chatservice PRIVMSG #a :\x01ACTION waves\x01",
        ]
        self.assertEqual(self.alice.take(), expected)
        self.assertEqual(self.bob.take(), expected)
        self.bob.send("PRIVMSG #a :back\r\n")
        self.assertEqual(self.bob.take(), [])

    def test_onlyMessagesEchoed(self) -> None:
        self.alice.send("NICK alicia\r\nPART #a\r\n")
        self.assertEqual(
            self.alice.take(),
            [
                ":alice!alice@chatservice NICK :alicia",
                ":alicia!alicia@chatservice PART #a",
            ],
        )

    def test_private(self) -> None:
        self.alice.send("PRIVMSG bob :psst\r\n")
        self.assertEqual(
            self.alice.take(), [":alice!alice@chatservice PRIVMSG bob :psst"]
        )
        self.assertEqual(
            self.bob.take(), [":alice!alice@chatservice PRIVMSG bob :psst"]
        )


class LabeledResponseTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = Harness(Limits(flood_rate=0))
        self.alice = self.harness.connect_irc()
        register(self.alice, "alice", "batch", "labeled-response")

    def test_oneReply(self) -> None:
        self.alice.send("@label=abc NICK alice2\r\n")
        self.assertEqual(
            self.alice.take(), ["@label=abc :alice!alice@chatservice NICK :alice2"]
        )

    def test_noReply(self) -> None:
        self.alice.send("@label=x PONG y\r\n")
        self.assertEqual(self.alice.take(), [f"@label=x {SERVER} ACK"])

    def test_invalidUtf8(self) -> None:
        """
        The warning for invalid UTF-8 is one of the command's replies.
        """
        self.alice.send(b"@label=u PRIVMSG nobody :\xaa\r\n")
        lines = self.alice.take()
        self.assertEqual(len(lines), 4)
        self.assertRegex(lines[1], f"^@batch=\\S+ {SERVER} WARN PRIVMSG INVALID_UTF8 :")
        self.assertRegex(lines[2], f"^@batch=\\S+ {SERVER} 401 alice nobody ")

    def test_severalReplies(self) -> None:
        self.alice.send("@label=l1 JOIN #valid,inv@lid\r\n")
        lines = self.alice.take()
        opening = lines[0]
        match = re.match(
            rf"^@label=l1 {SERVER} BATCH \+(\S+) labeled-response$", opening
        )
        assert match is not None, opening
        ref = match.group(1)
        self.assertEqual(lines[-1], f"{SERVER} BATCH -{ref}")
        for line in lines[1:-1]:
            self.assertEqual(tags_of(line), {"batch": ref})
        commands = [untagged(line).split(" ")[1] for line in lines[1:-1]]
        self.assertEqual(commands, ["JOIN", "353", "366", "403"])

    def test_echoIsLabelled(self) -> None:
        self.alice.send("CAP REQ echo-message\r\nJOIN #a\r\n")
        self.alice.take()
        self.alice.send("@label=m PRIVMSG #a :hi\r\n")
        self.assertEqual(
            self.alice.take(), ["@label=m :alice!alice@chatservice PRIVMSG #a :hi"]
        )

    def test_otherLinesNotLabelled(self) -> None:
        bob = self.harness.connect_irc()
        register(bob, "bob")
        for client in (self.alice, bob):
            client.send("JOIN #a\r\n")
        discard(self.alice, bob)
        bob.proto.dataReceived(b"PRIVMSG #a :first\r\n")
        self.alice.send("@label=p PING x\r\n")
        self.assertEqual(
            self.alice.take(),
            [
                ":bob!bob@chatservice PRIVMSG #a :first",
                f"@label=p {SERVER} PONG My.Little.Server x",
            ],
        )

    def test_withoutCapability(self) -> None:
        plain = self.harness.connect_irc()
        register(plain, "plain")
        plain.send("@label=x PING y\r\n")
        self.assertEqual(plain.take(), [f"{SERVER} PONG My.Little.Server y"])

    def test_beforeRegistration(self) -> None:
        client = self.harness.connect_irc()
        client.send("CAP REQ labeled-response\r\n")
        client.take()
        client.send("@label=q CAP LIST\r\n")
        self.assertEqual(
            client.take(), [f"@label=q {SERVER} CAP * LIST labeled-response"]
        )


class HistoryBatchTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = Harness(
            Limits(flood_rate=0), history=lambda clock: History(clock=clock.seconds)
        )
        self.harness.advance(1_700_000_000.25)
        speaker = self.harness.connect_irc()
        register(speaker, "bob")
        speaker.send(
            "JOIN #a\r\nPRIVMSG #a :hello\r\nPRIVMSG #a :\x01ACTION waves\x01\r\n"
        )
        self.harness.advance(5)

    def test_batch(self) -> None:
        client = self.harness.connect_irc()
        register(client, "alice", "batch", "server-time")
        client.send("JOIN #a\r\n")
        lines = client.take()
        start = [line for line in lines if " BATCH +" in line]
        self.assertEqual(len(start), 1)
        ref = untagged(start[0]).split(" ")[2][1:]
        self.assertEqual(untagged(start[0]), f"{SERVER} BATCH +{ref} chathistory #a")
        index = lines.index(start[0])
        self.assertEqual(
            lines[index + 1 : index + 4],
            [
                f"@batch={ref};time=2023-11-14T22:13:20.250Z "
                ":bob!bob@chatservice PRIVMSG #a :hello",
                f"@batch={ref};time=2023-11-14T22:13:20.250Z "
                ":bob!bob@chatservice PRIVMSG #a :\x01ACTION waves\x01",
                f"@time=2023-11-14T22:13:25.250Z {SERVER} BATCH -{ref}",
            ],
        )

    def test_notices(self) -> None:
        client = self.harness.connect_irc()
        register(client, "alice", "server-time")
        client.send("JOIN #a\r\n")
        notices = [untagged(line) for line in client.take() if " NOTICE #a " in line]
        self.assertEqual(
            notices[1], f"{SERVER} NOTICE #a :[2023-11-14 22:13:20] <bob> hello"
        )


class TagSyntaxTests(SynchronousTestCase):
    @given(st.text())
    def test_escapeRoundTrip(self, value: str) -> None:
        written = tags.escape(value)
        self.assertNotIn(" ", written)
        self.assertNotIn(";", written)
        self.assertEqual(tags.unescape(written), value)

    def test_parse(self) -> None:
        self.assertEqual(
            tags.parse("a=b;+c=d\\:e;f;g=;a=z;=x"),
            {"a": "z", "+c": "d;e", "f": "", "g": ""},
        )
        self.assertEqual(tags.parse("+a=x\\"), {"+a": "x"})

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.binary(max_size=60).map(lambda b: b.replace(b" ", b"")),
                st.sampled_from(
                    [b"PING x", b"TAGMSG #a", b"PRIVMSG #a :hi", b"JOIN #a", b"NICK"]
                ),
            ),
            max_size=6,
        )
    )
    def test_taggedLinesNeverRaise(self, lines: list[tuple[bytes, bytes]]) -> None:
        harness = Harness(Limits(flood_rate=0))
        client = harness.connect_irc()
        register(
            client, "alice", "message-tags", "batch", "labeled-response", "server-time"
        )
        client.send("JOIN #a\r\n")
        for head, line in lines:
            data = b"@" + head + b" " + line
            client.send(data.replace(b"\n", b"").replace(b"\r", b"") + b"\r\n")
        client.send(b"PING end\r\n")
        self.assertTrue(client.take()[-1].endswith("PONG My.Little.Server end"))
