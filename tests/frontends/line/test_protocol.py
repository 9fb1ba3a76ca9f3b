"""
Tests for L{chatservice.frontends.line.protocol}: the line protocol and its
factory, driven in memory with L{StringTransport}s, a L{Clock} for the
registry's once-a-turn flushes, and L{iosim} for pumped connection pairs.
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial import unittest

from chatservice.frontends.limits import Limits
from chatservice.frontends.line.commands import COMMANDS
from chatservice.frontends.line.protocol import LineProtocol
from tests.support.memory import Connection, Harness, discard, line_factory

DEFAULT_MAX_LINE = Limits().max_line

PROTOCOL_DOC = Path(__file__).parents[3] / "docs" / "protocol.md"

WELCOME = re.compile(
    r"^\*\*\* Welcome to chatservice, (guest\d+)! You are in lobby\. "
    r"Type /help for commands\.$"
)


class ChatTestCase(unittest.SynchronousTestCase):
    max_line = DEFAULT_MAX_LINE

    def setUp(self) -> None:
        self.harness = Harness(Limits(max_line=self.max_line))

    def clients(self, n: int) -> list[Connection]:
        return self.harness.clients(n)

    def assertNothing(self, *clients: Connection) -> None:
        for client in clients:
            self.assertEqual(client.take(), [], f"{client.nick} was sent something")

    def two_rooms(self) -> tuple[Connection, Connection, Connection]:
        """
        Three clients with empty output: the first in the lobby and in
        python (talking in python), the second only in the lobby, and the
        third only in python.
        """
        a, b, c = self.clients(3)
        a.say("/join python")
        c.say("/join python")
        c.say("/part lobby")
        discard(a, b, c)
        return a, b, c


class WelcomeTests(ChatTestCase):
    def test_welcome(self) -> None:
        """
        A new connection is greeted with its guest nickname and the lobby.
        """
        first = self.harness.connect()
        [line] = first.take()
        match = WELCOME.match(line)
        assert match is not None, line
        self.assertEqual(match.group(1), first.nick)

    def test_guestNicksDiffer(self) -> None:
        """
        Every connection gets its own guest nickname.
        """
        a, b, c = (self.harness.connect() for _ in range(3))
        nicks = set()
        for client in (a, b, c):
            match = WELCOME.match(client.take()[0])
            assert match is not None
            nicks.add(match.group(1))
        self.assertEqual(len(nicks), 3)

    def test_guestNickSkipsTakenName(self) -> None:
        """
        A guest nickname that someone chose for themselves is not handed out.
        """
        a = self.harness.connect()
        a.say("/nick Guest2")
        b = self.harness.connect()
        self.assertNotEqual(b.nick.lower(), "guest2")
        self.assertNotEqual(b.nick, a.nick)

    def test_othersSeeJoin(self) -> None:
        """
        The lobby sees a newcomer join; the newcomer is not told of itself.
        """
        a = self.harness.connect()
        a.take()
        b = self.harness.connect()
        self.assertEqual(a.take(), [f"[lobby] --> {b.nick} joined"])
        lines = b.take()
        self.assertEqual(len(lines), 1)
        self.assertRegex(lines[0], WELCOME)


class RelayTests(ChatTestCase):
    def test_plainLineReachesOthersNotSender(self) -> None:
        a, b, c = self.clients(3)
        a.say("hello there")
        expected = [f"[lobby] <{a.nick}> hello there"]
        self.assertEqual(b.take(), expected)
        self.assertEqual(c.take(), expected)
        self.assertNothing(a)

    def test_senderShownByNick(self) -> None:
        a, b = self.clients(2)
        a.say("/nick alice")
        b.take()
        a.say("hi")
        self.assertEqual(b.take(), ["[lobby] <alice> hi"])

    def test_lfAndCrlf(self) -> None:
        """
        Lines may end in LF (nc) or CRLF (telnet); the CR is not relayed.
        """
        a, b = self.clients(2)
        a.send(b"one\n")
        a.send(b"two\r\n")
        a.send(b"three\r\nfour\nfive\r\n")
        self.assertEqual(
            b.take(),
            [
                f"[lobby] <{a.nick}> {word}"
                for word in "one two three four five".split()
            ],
        )

    def test_splitAtEveryPoint(self) -> None:
        """
        A line split in two at any byte arrives whole.
        """
        data = b"split me\r\n"
        a, b = self.clients(2)
        for cut in range(len(data) + 1):
            a.send(data[:cut])
            a.send(data[cut:])
            self.assertEqual(b.take(), [f"[lobby] <{a.nick}> split me"], cut)

    def test_byteAtATime(self) -> None:
        a, b = self.clients(2)
        for byte in b"first\r\nsecond\n":
            a.send(bytes([byte]))
        self.assertEqual(
            b.take(), [f"[lobby] <{a.nick}> first", f"[lobby] <{a.nick}> second"]
        )

    def test_splitInsideMultibyteCharacter(self) -> None:
        a, b = self.clients(2)
        data = "caf\u00e9 \u2603\n".encode()
        a.send(data[:4])
        a.send(data[4:8])
        a.send(data[8:])
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> caf\u00e9 \u2603"])

    def test_severalLinesInOneChunk(self) -> None:
        a, b = self.clients(2)
        a.send(b"1\n2\r\n3\n")
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> {n}" for n in "123"])

    def test_chunkEndsMidLine(self) -> None:
        """
        A chunk's unterminated tail waits for the rest of its line.
        """
        a, b = self.clients(2)
        a.send(b"whole\npar")
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> whole"])
        a.send(b"tial\n")
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> partial"])

    def test_outgoingLinesEndInCrlf(self) -> None:
        a, b = self.clients(2)
        a.send(b"x\ny\n")
        raw = b.transport.value()
        self.assertEqual(
            raw,
            f"[lobby] <{a.nick}> x\r\n[lobby] <{a.nick}> y\r\n".encode(),
        )

    def test_oneWritePerTurn(self) -> None:
        """
        Everything queued for a member in one turn goes out in one write.
        """
        writes: list[bytes] = []

        class Recording(StringTransport):
            def write(self, data: bytes) -> None:
                writes.append(data)
                super().write(data)

        a = self.harness.connect()
        b = self.harness.connect(transport=Recording())
        discard(a, b)
        del writes[:]
        a.send(b"1\n2\n3\n")
        self.assertEqual(len(writes), 1)
        self.assertEqual(writes[0].count(b"\r\n"), 3)

    def test_blankLinesRelayNothing(self) -> None:
        a, b = self.clients(2)
        a.send(b"\n\r\n   \n \t \r\n\t\n")
        self.assertNothing(a, b)

    def test_doubleSlashSendsLiteralSlash(self) -> None:
        a, b = self.clients(2)
        a.say("//text")
        a.say("///etc/passwd")
        self.assertEqual(
            b.take(), [f"[lobby] <{a.nick}> /text", f"[lobby] <{a.nick}> //etc/passwd"]
        )
        self.assertNothing(a)

    def test_slashInsideLineIsChat(self) -> None:
        a, b = self.clients(2)
        a.say("and/or /nick x")
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> and/or /nick x"])
        self.assertTrue(a.nick.startswith("guest"))

    def test_invalidUtf8Replaced(self) -> None:
        """
        Bytes that are not UTF-8 (a truncated sequence, a lone continuation
        byte, an overlong form, an encoded surrogate) become U+FFFD.
        """
        a, b = self.clients(2)
        a.send(b"caf\xc3 \x80\xc0\xaf \xed\xa0\x80 ok\n")
        self.assertEqual(
            b.take(),
            [f"[lobby] <{a.nick}> caf\ufffd \ufffd\ufffd\ufffd \ufffd\ufffd\ufffd ok"],
        )
        a.say("still here")
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> still here"])

    def test_invalidUtf8InCommand(self) -> None:
        a, b = self.clients(2)
        a.send(b"/nick \x80\xc0\n")
        [line] = a.take()
        self.assertTrue(line.startswith("!!! Invalid nickname:"), line)
        a.send(b"/join \xc0\n/who \xc0\n/msg \x80 hi\n/help \x80\n")
        lines = a.take()
        self.assertEqual(len(lines), 4)
        for line in lines:
            self.assertTrue(line.startswith("!!! "), line)
        self.assertNothing(b)


class LongLineTests(ChatTestCase):
    max_line = 10

    def test_overLongLineDropped(self) -> None:
        """
        A line over the limit is refused with an error, relayed to nobody,
        and the lines after it in the same chunk are still read.
        """
        a, b = self.clients(2)
        a.send(b"x" * 11 + b"\nafter\n")
        self.assertEqual(
            a.take(), ["!!! Line too long (the limit is 10 bytes); it was dropped."]
        )
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> after"])
        self.assertFalse(a.transport.disconnecting)

    def test_lineAtLimitAccepted(self) -> None:
        a, b = self.clients(2)
        a.send(b"y" * 10 + b"\n")
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> {'y' * 10}"])
        self.assertNothing(a)

    def test_lineAtLimitAcceptedWithCrlf(self) -> None:
        """
        The CR of a CRLF ending is part of the line ending, not of the line,
        so a telnet user may send as much as an nc user.
        """
        a, b = self.clients(2)
        a.send(b"y" * 10 + b"\r\n")
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> {'y' * 10}"])
        self.assertNothing(a)

    def test_overLongPartialLine(self) -> None:
        """
        An unterminated line already over the limit is refused at once, once,
        and its remainder up to the next newline is dropped too.
        """
        a, b = self.clients(2)
        a.send(b"z" * 11)
        self.assertEqual(
            a.take(), ["!!! Line too long (the limit is 10 bytes); it was dropped."]
        )
        a.send(b"z" * 50)
        a.send(b"z" * 50)
        self.assertNothing(a, b)
        a.send(b"tail\r\nnext\n")
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> next"])
        self.assertNothing(a)

    def test_overLongAcrossChunks(self) -> None:
        """
        A line that only goes over the limit once several chunks are joined
        is refused too.
        """
        a, b = self.clients(2)
        a.send(b"abcdef")
        a.send(b"ghijkl")
        self.assertEqual(len(a.take()), 1)
        a.send(b"\nok\n")
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> ok"])

    def test_severalLongLinesInOneChunk(self) -> None:
        a, b = self.clients(2)
        a.send(b"1" * 20 + b"\nok\n" + b"2" * 20 + b"\nfine\n" + b"3" * 20)
        self.assertEqual(len(a.take()), 3)
        self.assertEqual(
            b.take(), [f"[lobby] <{a.nick}> ok", f"[lobby] <{a.nick}> fine"]
        )

    def test_discardedTailNotReadAtHalfClose(self) -> None:
        a, b = self.clients(2)
        a.send(b"q" * 30)
        a.take()
        a.half_close()
        self.assertEqual(a.take(), ["*** Goodbye."])
        self.assertEqual(b.take(), [f"[lobby] <-- {a.nick} quit (connection closed)"])


class NickTests(ChatTestCase):
    def test_nick(self) -> None:
        a, b = self.clients(2)
        old = a.nick
        a.say("/nick alice")
        self.assertEqual(a.take(), ["*** You are now known as alice."])
        self.assertEqual(b.take(), [f"[lobby] --- {old} is now known as alice"])
        self.assertEqual(a.nick, "alice")

    def test_nickSeenInEveryRoom(self) -> None:
        a, b, c = self.two_rooms()
        old = a.nick
        a.say("/nick alice")
        self.assertEqual(b.take(), [f"[lobby] --- {old} is now known as alice"])
        self.assertEqual(c.take(), [f"[python] --- {old} is now known as alice"])

    def test_nickCollisionInAnyCase(self) -> None:
        a, b, c = self.clients(3)
        a.say("/nick Alice")
        discard(a, b, c)
        before = b.nick
        for attempt in ["Alice", "alice", "ALICE", "aLiCe", "\uff41lice"]:
            b.say(f"/nick {attempt}")
            [line] = b.take()
            self.assertTrue(line.startswith("!!! The nickname "), line)
            self.assertTrue(line.endswith(" is taken."), line)
            self.assertEqual(b.nick, before)
        self.assertNothing(a, c)
        b.say("talking")
        self.assertEqual(a.take(), [f"[lobby] <{before}> talking"])

    def test_nickChangeCaseOfOwn(self) -> None:
        a, b = self.clients(2)
        a.say("/nick alice")
        discard(b, a)
        a.say("/nick ALICE")
        self.assertEqual(a.take(), ["*** You are now known as ALICE."])
        self.assertEqual(b.take(), ["[lobby] --- alice is now known as ALICE"])

    def test_nickSameAsOwn(self) -> None:
        a, b = self.clients(2)
        a.say("/nick alice")
        discard(a, b)
        a.say("/nick alice")
        self.assertEqual(a.take(), ["*** You are already alice."])
        self.assertNothing(b)

    def test_invalidNick(self) -> None:
        a, b = self.clients(2)
        before = a.nick
        for bad in ["9lives", "has space", "semi;colon", "x" * 25, "<bob>"]:
            a.say(f"/nick {bad}")
            [line] = a.take()
            prefix = "!!! Invalid nickname: "
            self.assertTrue(line.startswith(prefix), line)
            self.assertTrue(line.endswith("."), line)
            self.assertGreater(len(line) - len(prefix), 5, line)
            self.assertEqual(a.nick, before)
        self.assertNothing(b)

    def test_reservedNick(self) -> None:
        a, b = self.clients(2)
        for reserved in ["admin", "Server", "NICKSERV"]:
            a.say(f"/nick {reserved}")
            self.assertEqual(
                a.take(), [f"!!! Invalid nickname: {reserved} is reserved."]
            )
        self.assertTrue(a.nick.startswith("guest"))
        self.assertNothing(b)

    def test_nickWithoutArgument(self) -> None:
        a, b = self.clients(2)
        a.say("/nick")
        a.say("/nick    ")
        self.assertEqual(a.take(), ["!!! Usage: /nick NAME"] * 2)
        self.assertNothing(b)

    def test_nickFreedOnDisconnect(self) -> None:
        a, b = self.clients(2)
        a.say("/nick alice")
        a.lost()
        b.take()
        b.say("/nick Alice")
        self.assertEqual(b.take(), ["*** You are now known as Alice."])

    def test_commandNamesIgnoreCase(self) -> None:
        a, _ = self.clients(2)
        a.say("/NICK alice")
        self.assertEqual(a.take(), ["*** You are now known as alice."])


class RoomTests(ChatTestCase):
    def test_join(self) -> None:
        a, b, c = self.clients(3)
        b.say("/join python")
        self.assertEqual(b.take(), ["*** Now talking in python (1 member)."])
        c.say("/join #python")
        self.assertEqual(c.take(), ["*** Now talking in python (2 members)."])
        self.assertEqual(b.take(), [f"[python] --> {c.nick} joined"])
        self.assertNothing(a)

    def test_joinKeepsOtherRooms(self) -> None:
        """
        Joining a room does not leave the lobby: lobby lines still arrive.
        """
        a, b = self.clients(2)
        b.say("/join python")
        b.take()
        a.say("lobby line")
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> lobby line"])

    def test_joinNameInAnyCase(self) -> None:
        a, b = self.clients(2)
        a.say("/join Python")
        b.say("/join PYTHON")
        self.assertEqual(b.take(), ["*** Now talking in Python (2 members)."])

    def test_joinCurrentRoomAgain(self) -> None:
        a, b = self.clients(2)
        a.say("/join lobby")
        self.assertEqual(a.take(), ["*** Now talking in lobby."])
        self.assertNothing(b)

    def test_joinSwitchesCurrentRoom(self) -> None:
        a, b, c = self.two_rooms()
        a.say("/join lobby")
        self.assertEqual(a.take(), ["*** Now talking in lobby."])
        a.say("to the lobby")
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> to the lobby"])
        self.assertNothing(c)

    def test_joinInvalid(self) -> None:
        a, b = self.clients(2)
        a.say("/join bad!room")
        a.say("/join #")
        a.say("/join")
        # The word after the room is its key: a third is one too many.
        a.say("/join bad room key")
        lines = a.take()
        self.assertEqual(len(lines), 4)
        self.assertTrue(lines[0].startswith("!!! Invalid room name: "), lines[0])
        self.assertTrue(lines[1].startswith("!!! Invalid room name: "), lines[1])
        self.assertEqual(lines[2:], ["!!! Usage: /join ROOM [KEY]"] * 2)
        self.assertNothing(b)

    def test_roomIsolation(self) -> None:
        """
        A line said in one room reaches nobody who is only in another.
        """
        both, lobbyOnly, pythonOnly = self.two_rooms()

        lobbyOnly.say("in the lobby")
        self.assertEqual(both.take(), [f"[lobby] <{lobbyOnly.nick}> in the lobby"])
        self.assertNothing(pythonOnly)

        pythonOnly.say("in python")
        self.assertEqual(both.take(), [f"[python] <{pythonOnly.nick}> in python"])
        self.assertNothing(lobbyOnly)

        lobbyOnly.say("/me waves")
        self.assertNothing(pythonOnly)
        self.assertEqual(both.take(), [f"[lobby] * {lobbyOnly.nick} waves"])

    def test_part(self) -> None:
        a, b, c = self.clients(3)
        b.say("/join python")
        c.say("/join python")
        discard(a, b, c)
        b.say("/part")
        self.assertEqual(b.take(), ["*** You left python; now talking in lobby."])
        self.assertEqual(c.take(), [f"[python] <-- {b.nick} left"])
        self.assertNothing(a)
        c.say("in python")
        self.assertNothing(a, b)
        b.say("back in lobby")
        self.assertEqual(a.take(), [f"[lobby] <{b.nick}> back in lobby"])

    def test_partNamedRoom(self) -> None:
        a, b = self.clients(2)
        b.say("/join python")
        b.take()
        b.say("/part #Lobby")
        self.assertEqual(b.take(), ["*** You left lobby; now talking in python."])
        self.assertEqual(a.take(), [f"[lobby] <-- {b.nick} left"])
        a.say("anyone?")
        self.assertNothing(b)

    def test_partNamedRoomNotIn(self) -> None:
        a, b = self.clients(2)
        b.say("/join python")
        a.say("/part python")
        a.say("/part nowhere")
        self.assertEqual(
            a.take(),
            [
                "!!! You are not in python.",
                "!!! You are not in nowhere.",
            ],
        )

    def test_partCurrentFallsBackToLastJoined(self) -> None:
        a, _ = self.clients(2)
        a.say("/join one")
        a.say("/join two")
        a.say("/join three")
        a.say("/join two")
        a.take()
        a.say("/part")
        self.assertEqual(a.take(), ["*** You left two; now talking in three."])

    def test_partLastRoomThenTalk(self) -> None:
        a, b = self.clients(2)
        a.say("/part")
        self.assertEqual(
            a.take(), ["*** You left lobby; you are in no room now; /join one to talk."]
        )
        self.assertEqual(b.take(), [f"[lobby] <-- {a.nick} left"])
        a.say("hello?")
        a.say("/me shrugs")
        a.say("/part")
        a.say("/who")
        self.assertEqual(
            a.take(), ["!!! You are not in any room; /join one first."] * 4
        )
        self.assertNothing(b)
        a.say("/join lobby")
        discard(a, b)
        a.say("back")
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> back"])

    def test_rooms(self) -> None:
        a, b, c = self.clients(3)
        b.say("/join python")
        c.say("/join python")
        c.say("/join zebra")
        a.take()
        a.say("/rooms")
        self.assertEqual(
            a.take(),
            [
                "*** 3 room(s):",
                "***   lobby (3)",
                "***   python (2)",
                "***   zebra (1)",
            ],
        )

    def test_roomsTiesByName(self) -> None:
        a, _ = self.clients(2)
        for name in ["delta", "Bravo", "charlie"]:
            a.say(f"/join {name}")
        a.take()
        a.say("/rooms")
        self.assertEqual(
            a.take(),
            [
                "*** 4 room(s):",
                "***   lobby (2)",
                "***   Bravo (1)",
                "***   charlie (1)",
                "***   delta (1)",
            ],
        )

    def test_emptyRoomDisappears(self) -> None:
        a, b = self.clients(2)
        b.say("/join python")
        b.say("/part")
        b.take()
        a.say("/rooms")
        self.assertEqual(a.take(), ["*** 1 room(s):", "***   lobby (2)"])
        a.say("/who python")
        self.assertEqual(a.take(), ["!!! No such room: python."])

    def test_noRooms(self) -> None:
        [a] = self.clients(1)
        a.say("/part")
        a.take()
        a.say("/rooms")
        self.assertEqual(a.take(), ["*** There are no rooms."])

    def test_who(self) -> None:
        a, b, c = self.clients(3)
        c.say("/join python")
        c.take()
        a.say("/who")
        self.assertEqual(
            a.take(), [f"*** lobby (3 members): @{a.nick}, {b.nick}, {c.nick}"]
        )
        self.assertNothing(b, c)
        a.say("/who python")
        a.say("/who #PYTHON")
        self.assertEqual(a.take(), [f"*** python (1 member): @{c.nick}"] * 2)
        a.say("/who nowhere")
        self.assertEqual(a.take(), ["!!! No such room: nowhere."])

    def test_whoFollowsRenames(self) -> None:
        a, b = self.clients(2)
        b.say("/nick bob")
        a.take()
        a.say("/who")
        self.assertEqual(a.take(), [f"*** lobby (2 members): @{a.nick}, bob"])

    def test_joinersDoNotSeeEarlierLines(self) -> None:
        """
        A line said in a room in the same turn as, but before, a join is not
        shown to the joiner.
        """
        a, b = self.clients(2)
        b.say("/part")
        b.say("/join other")
        discard(a, b)
        a.proto.dataReceived(b"before\n")
        b.proto.dataReceived(b"/join lobby\n")
        a.proto.dataReceived(b"after\n")
        self.harness.turn()
        self.assertEqual(
            b.take(),
            ["*** Now talking in lobby (2 members).", f"[lobby] <{a.nick}> after"],
        )


class PrivateMessageTests(ChatTestCase):
    def test_msgReachesOnlyTarget(self) -> None:
        a, b, c = self.clients(3)
        a.say(f"/msg {b.nick} psst, a secret")
        self.assertEqual(b.take(), [f"*{a.nick}* psst, a secret"])
        self.assertNothing(c)
        self.assertFalse(any("secret" in line for line in a.take()))

    def test_msgTargetInAnyCase(self) -> None:
        a, b = self.clients(2)
        b.say("/nick Bob")
        discard(a, b)
        a.say("/msg bOB hi   there  ")
        self.assertEqual(b.take(), [f"*{a.nick}* hi   there"])

    def test_msgAcrossRooms(self) -> None:
        a, b = self.clients(2)
        b.say("/join elsewhere")
        b.say("/part lobby")
        discard(a, b)
        a.say(f"/msg {b.nick} found you")
        self.assertEqual(b.take(), [f"*{a.nick}* found you"])

    def test_msgUnknownNick(self) -> None:
        a, b = self.clients(2)
        a.say("/msg nobody123 hello")
        self.assertEqual(a.take(), ["!!! No such nickname: nobody123."])
        self.assertNothing(b)

    def test_msgUsage(self) -> None:
        a, b = self.clients(2)
        a.say(f"/msg {b.nick}")
        a.say(f"/msg {b.nick}    ")
        a.say("/msg")
        self.assertEqual(a.take(), ["!!! Usage: /msg NICK TEXT"] * 3)
        self.assertNothing(b)

    def test_msgAfterRoomLineArrivesAfterIt(self) -> None:
        a, b = self.clients(2)
        a.send(f"first in room\n/msg {b.nick} second in private\n")
        self.assertEqual(
            b.take(),
            [f"[lobby] <{a.nick}> first in room", f"*{a.nick}* second in private"],
        )

    def test_msgToSelf(self) -> None:
        a, b = self.clients(2)
        a.say(f"/msg {a.nick} note to self")
        self.assertEqual(a.take(), [f"*{a.nick}* note to self"])
        self.assertNothing(b)


class ActionTests(ChatTestCase):
    def test_me(self) -> None:
        a, b, c = self.clients(3)
        a.say("/me waves hello")
        self.assertEqual(b.take(), [f"[lobby] * {a.nick} waves hello"])
        self.assertEqual(c.take(), [f"[lobby] * {a.nick} waves hello"])
        self.assertNothing(a)

    def test_meUsage(self) -> None:
        a, b = self.clients(2)
        a.say("/me")
        self.assertEqual(a.take(), ["!!! Usage: /me ACTION"])
        self.assertNothing(b)


class HelpTests(ChatTestCase):
    def test_help(self) -> None:
        a, b = self.clients(2)
        a.say("/help")
        lines = a.take()
        self.assertEqual(lines[0], "*** Commands:")
        listed = lines[1 : 1 + len(COMMANDS)]
        self.assertEqual(
            listed,
            [f"***   {c.usage}: {c.summary}" for c in COMMANDS.values()],
        )
        self.assertEqual(len(lines), len(COMMANDS) + 2)
        self.assertIn("//", lines[-1])
        self.assertNothing(b)

    def test_helpOneCommand(self) -> None:
        a, b = self.clients(2)
        nick = COMMANDS["nick"]
        for asked in ["nick", "/nick", "NICK"]:
            a.say(f"/help {asked}")
            self.assertEqual(a.take(), [f"*** /nick NAME: {nick.summary}"])
        self.assertNothing(b)

    def test_helpEveryCommand(self) -> None:
        [a] = self.clients(1)
        for name, command in COMMANDS.items():
            a.say(f"/help {name}")
            # More commands than the flood limiter's burst: a line a second.
            self.harness.advance(1)
            self.assertEqual(a.take(), [f"*** {command.usage}: {command.summary}"])

    def test_helpBogus(self) -> None:
        a, b = self.clients(2)
        a.say("/help bogus")
        self.assertEqual(
            a.take(), ["!!! No such command: bogus. Type /help for the list."]
        )
        self.assertNothing(b)


class UnknownCommandTests(ChatTestCase):
    def test_unknownCommand(self) -> None:
        a, b = self.clients(2)
        a.say("/frobnicate the widgets")
        self.assertEqual(
            a.take(), ["!!! Unknown command: /frobnicate. Type /help for the list."]
        )
        self.assertNothing(b)

    def test_loneSlash(self) -> None:
        a, b = self.clients(2)
        a.say("/")
        [line] = a.take()
        self.assertTrue(line.startswith("!!! Unknown command:"), line)
        self.assertNothing(b)


class QuitTests(ChatTestCase):
    def test_quitWithMessage(self) -> None:
        a, b, c = self.clients(3)
        a.say("/quit see you all")
        self.assertEqual(a.take(), ["*** Goodbye."])
        self.assertTrue(a.transport.disconnecting)
        expected = [f"[lobby] <-- {a.nick} quit (see you all)"]
        self.assertEqual(b.take(), expected)
        self.assertEqual(c.take(), expected)

    def test_quitWithoutMessage(self) -> None:
        a, b = self.clients(2)
        a.say("/quit")
        self.assertEqual(a.take(), ["*** Goodbye."])
        self.assertEqual(b.take(), [f"[lobby] <-- {a.nick} quit (quit)"])
        self.assertTrue(a.transport.disconnecting)

    def test_quitSeenInEveryRoom(self) -> None:
        a, b, c = self.two_rooms()
        a.say("/quit bye")
        self.assertEqual(b.take(), [f"[lobby] <-- {a.nick} quit (bye)"])
        self.assertEqual(c.take(), [f"[python] <-- {a.nick} quit (bye)"])

    def test_goodbyeAfterEverythingElse(self) -> None:
        """
        Replies queued before the quit reach the quitter before Goodbye,
        and lines after the quit in the same chunk are not read.
        """
        a, b = self.clients(2)
        a.send(b"/who\nlast words\n/quit\nnot sent\n/nick ghost\n")
        lines = a.take()
        self.assertEqual(lines[-1], "*** Goodbye.")
        self.assertTrue(lines[0].startswith("*** lobby (2 members)"), lines)
        self.assertEqual(
            b.take(),
            [f"[lobby] <{a.nick}> last words", f"[lobby] <-- {a.nick} quit (quit)"],
        )
        b.say("/who")
        self.assertEqual(b.take(), [f"*** lobby (1 member): {b.nick}"])

    def test_nothingAfterQuit(self) -> None:
        a, b = self.clients(2)
        a.say("/quit")
        discard(a, b)
        b.say("are you there?")
        a.say("/nick zombie")
        a.say("anyone?")
        self.assertNothing(a, b)
        self.assertTrue(a.nick.startswith("guest"))

    def test_connectionLostAnnounced(self) -> None:
        a, b = self.clients(2)
        a.proto.connectionLost(Failure(ConnectionLost()))
        self.harness.turn()
        self.assertEqual(b.take(), [f"[lobby] <-- {a.nick} quit (connection lost)"])
        # A second notification is harmless and not announced again.
        a.lost()
        self.assertNothing(b)
        b.say("/who")
        self.assertEqual(b.take(), [f"*** lobby (1 member): {b.nick}"])

    def test_connectionLostAfterQuit(self) -> None:
        a, b = self.clients(2)
        a.say("/quit done")
        a.lost()
        self.assertEqual(b.take(), [f"[lobby] <-- {a.nick} quit (done)"])


class HalfCloseTests(ChatTestCase):
    def test_partialLineReadAtHalfClose(self) -> None:
        a, b = self.clients(2)
        a.send(b"first\nlast words")
        a.half_close()
        self.assertEqual(
            b.take(),
            [
                f"[lobby] <{a.nick}> first",
                f"[lobby] <{a.nick}> last words",
                f"[lobby] <-- {a.nick} quit (connection closed)",
            ],
        )
        self.assertEqual(a.take(), ["*** Goodbye."])
        self.assertTrue(a.transport.disconnecting)

    def test_partialCrLineAtHalfClose(self) -> None:
        a, b = self.clients(2)
        a.send(b"with cr\r")
        a.half_close()
        self.assertEqual(b.take()[0], f"[lobby] <{a.nick}> with cr")

    def test_partialCommandAtHalfClose(self) -> None:
        a, b = self.clients(2)
        old = a.nick
        a.send(b"/nick zed")
        a.half_close()
        self.assertEqual(a.take(), ["*** You are now known as zed.", "*** Goodbye."])
        self.assertEqual(
            b.take(),
            [
                f"[lobby] --- {old} is now known as zed",
                "[lobby] <-- zed quit (connection closed)",
            ],
        )
        self.assertTrue(a.transport.disconnecting)

    def test_halfCloseWithoutPartial(self) -> None:
        a, b = self.clients(2)
        a.half_close()
        self.assertEqual(a.take(), ["*** Goodbye."])
        self.assertEqual(b.take(), [f"[lobby] <-- {a.nick} quit (connection closed)"])
        self.assertTrue(a.transport.disconnecting)

    def test_halfCloseAfterQuit(self) -> None:
        a, b = self.clients(2)
        a.say("/quit")
        discard(a, b)
        a.half_close()
        self.assertNothing(a, b)
        self.assertTrue(a.transport.disconnecting)

    def test_writeConnectionLost(self) -> None:
        a, _ = self.clients(2)
        a.proto.writeConnectionLost()
        self.assertTrue(a.transport.disconnecting)

    def test_lineAfterQuitNotReadAtHalfClose(self) -> None:
        """
        Once a client has quit, an unterminated line after the C{/quit} is
        not acted on when its input ends: it cannot rename, join, or message
        as a member who has left.
        """
        a, b = self.clients(2)
        a.send(b"/quit\n/join ghosts")
        a.half_close()
        b.take()
        b.say("/rooms")
        self.assertEqual(b.take(), ["*** 1 room(s):", "***   lobby (1)"])

    def test_renameAfterQuitAtHalfClose(self) -> None:
        a, b = self.clients(2)
        a.send(b"/quit\n/nick zed")
        a.half_close()
        b.take()
        b.say("/nick zed")
        self.assertEqual(b.take(), ["*** You are now known as zed."])

    def test_privateMessageAfterQuitAtHalfClose(self) -> None:
        a, b = self.clients(2)
        a.send(f"/quit\n/msg {b.nick} boo".encode())
        a.half_close()
        self.assertEqual(b.take(), [f"[lobby] <-- {a.nick} quit (quit)"])


class KillingTransport(StringTransport):
    """
    A transport whose writes make connections drop in the middle of a flush,
    as when a write fails and the reactor reports the loss at once.

    @ivar victims: the protocols to disconnect, once, on the first write.
    @ivar before: disconnect before the data is written, not after.
    """

    def __init__(self, before: bool = False) -> None:
        super().__init__()
        self.victims: list[LineProtocol] = []
        self.before = before

    def write(self, data: bytes) -> None:
        victims, self.victims = self.victims, []
        if not self.before:
            super().write(data)
        for victim in victims:
            victim.connectionLost(Failure(ConnectionLost("write failed")))
        if self.before:
            super().write(data)


class DisconnectDuringBroadcastTests(ChatTestCase):
    """
    A write that makes a connection drop (its own or another's) in the middle
    of a flush neither raises nor keeps the line from anyone still connected;
    the drops are announced in the same turn, after the line.
    """

    def killers(self, n: int, before: bool = False) -> list[Connection]:
        clients = [
            self.harness.connect(transport=KillingTransport(before)) for _ in range(n)
        ]
        discard(*clients)
        self.everyone = clients
        return clients

    def transport(self, client: Connection) -> KillingTransport:
        assert isinstance(client.transport, KillingTransport)
        return client.transport

    def quits(self, gone: list[Connection], reasons: dict[str, str]) -> set[str]:
        return {
            f"[lobby] <-- {c.nick} quit ({reasons.get(c.nick, 'connection lost')})"
            for c in gone
        }

    def assertAftermath(
        self,
        line: str | None,
        gone: list[Connection],
        receivers: list[Connection],
        reasons: dict[str, str] | None = None,
    ) -> None:
        """
        Every client in C{receivers} got C{line} (if not C{None}), then the
        quit of everyone in C{gone}, once each; those in C{gone} got C{line}
        then at most quit lines; and the lobby holds everyone else.
        """
        quits = self.quits(gone, reasons or {})
        for client in self.everyone:
            lines = client.take()
            if line is not None and client in receivers:
                self.assertEqual(lines[:1], [line], client.nick)
                lines = lines[1:]
            self.assertEqual(len(lines), len(set(lines)), lines)
            if client in gone:
                self.assertLessEqual(set(lines), quits, client.nick)
            else:
                self.assertEqual(set(lines), quits, client.nick)
        members = self.harness.factory.chat.rooms["lobby"].members
        self.assertEqual(
            [m.nick for m in members],
            [c.nick for c in self.everyone if c not in gone],
        )
        for client in gone:
            self.assertNotIn(client.nick, self.harness.factory.chat.members)

    def test_recipientDropsItself(self) -> None:
        a, b, c, d = self.killers(4)
        self.transport(b).victims.append(b.proto)
        a.say("hello")
        self.assertAftermath(f"[lobby] <{a.nick}> hello", [b], [b, c, d])

    def test_recipientDropsLaterRecipients(self) -> None:
        a, b, c, d, e = self.killers(5)
        self.transport(b).victims.extend([c.proto, d.proto])
        a.say("hello")
        self.assertAftermath(f"[lobby] <{a.nick}> hello", [c, d], [b, e])
        self.assertNothing(c, d)

    def test_recipientDropsEarlierRecipientAndSender(self) -> None:
        a, b, c, d = self.killers(4)
        self.transport(c).victims.extend([a.proto, b.proto])
        a.say("hello")
        self.assertAftermath(f"[lobby] <{a.nick}> hello", [a, b], [b, c, d])

    def test_dropBeforeWrite(self) -> None:
        """
        A connection dropped before its own write completes, and another
        dropped by that, do not stop delivery to the rest.
        """
        a, b, c, d, e = self.killers(5, before=True)
        self.transport(b).victims.extend([b.proto, d.proto])
        a.say("hello")
        self.assertAftermath(f"[lobby] <{a.nick}> hello", [b, d], [b, c, e])

    def test_everyRecipientDropsItself(self) -> None:
        clients = self.killers(5)
        for client in clients[1:]:
            self.transport(client).victims.append(client.proto)
        sender = clients[0]
        sender.say("last call")
        self.assertAftermath(
            f"[lobby] <{sender.nick}> last call", clients[1:], clients[1:]
        )

    def test_dropDuringQuitFlush(self) -> None:
        """
        The quitter's Goodbye write dropping another member leaves everyone
        else told of both.
        """
        a, b, _ = self.killers(3)
        self.transport(a).victims.append(b.proto)
        a.say("/quit bye")
        self.assertEqual(a.take(), ["*** Goodbye."])
        self.assertTrue(a.transport.disconnecting)
        self.assertAftermath(None, [a, b], [], {a.nick: "bye"})

    def test_dropDuringPrivateMessage(self) -> None:
        a, b, c = self.killers(3)
        self.transport(b).victims.append(c.proto)
        a.say(f"/msg {b.nick} hi")
        self.assertAftermath(f"*{a.nick}* hi", [c], [b])

    def test_laterTurnsUnaffected(self) -> None:
        a, b, c = self.killers(3)
        self.transport(b).victims.append(b.proto)
        a.say("one")
        discard(a, b, c)
        a.say("two")
        c.say("three")
        self.assertEqual(a.take(), [f"[lobby] <{c.nick}> three"])
        self.assertEqual(c.take(), [f"[lobby] <{a.nick}> two"])
        self.assertNothing(b)


class LineCollector(LineReceiver):
    """
    A client that keeps the lines the server sends.
    """

    delimiter = b"\r\n"

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lost = False

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line.decode("utf-8"))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines

    def sendPartial(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def hangUp(self) -> None:
        assert self.transport is not None
        self.transport.loseConnection()


class PumpedTests(unittest.SynchronousTestCase):
    """
    Server and clients joined by L{iosim}'s in-memory transports.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = line_factory(self.clock)
        self.pumps: list[iosim.IOPump] = []
        self.servers: list[LineProtocol] = []
        self.ports = iter(range(40000, 50000))

    def connect(self) -> LineCollector:
        address = IPv4Address("TCP", "127.0.0.1", next(self.ports))
        server = self.factory.buildProtocol(address)
        assert server is not None
        client, _, pump = iosim.connectedServerAndClient(
            lambda: server, LineCollector, clock=self.clock
        )
        self.pumps.append(pump)
        self.servers.append(server)
        return client

    def nick(self, index: int) -> str:
        """
        The nickname of the server side of the C{index}th connection.
        """
        member = self.servers[index].member
        assert member is not None
        return member.nick

    def flush(self) -> None:
        for _ in range(3):
            for pump in self.pumps:
                pump.flush()

    def connectMany(self, n: int) -> list[LineCollector]:
        clients = [self.connect() for _ in range(n)]
        self.flush()
        for client in clients:
            client.take()
        return clients

    def test_conversation(self) -> None:
        a, b, c = self.connectMany(3)
        a.sendLine(b"/nick alice")
        b.sendLine(b"/nick bob")
        self.flush()
        for client in (a, b, c):
            client.take()
        a.sendLine(b"hello, bob")
        b.sendPartial(b"hi al")
        self.flush()
        b.sendPartial(b"ice\n")
        self.flush()
        self.assertEqual(b.take(), ["[lobby] <alice> hello, bob"])
        self.assertEqual(a.take(), ["[lobby] <bob> hi alice"])
        self.assertEqual(
            c.take(), ["[lobby] <alice> hello, bob", "[lobby] <bob> hi alice"]
        )

    def test_serverDropsOneClient(self) -> None:
        a, b, c = self.connectMany(3)
        bNick = self.nick(1)
        server = self.servers[1]
        assert server.transport is not None
        server.transport.loseConnection()
        self.flush()
        self.assertTrue(b.lost)
        self.assertFalse(a.lost)
        self.assertFalse(c.lost)
        quitLine = f"[lobby] <-- {bNick} quit (connection lost)"
        self.assertEqual(a.take(), [quitLine])
        self.assertEqual(c.take(), [quitLine])

        a.sendLine(b"still here?")
        self.flush()
        aNick = self.nick(0)
        self.assertEqual(c.take(), [f"[lobby] <{aNick}> still here?"])
        self.assertEqual(b.take(), [])

    def test_quitOverConnection(self) -> None:
        a, b, c = self.connectMany(3)
        b.sendLine(b"/quit off to lunch")
        self.flush()
        self.assertEqual(b.take(), ["*** Goodbye."])
        self.assertTrue(b.lost)
        bNick = self.nick(1)
        self.assertEqual(a.take(), [f"[lobby] <-- {bNick} quit (off to lunch)"])
        c.sendLine(b"more")
        self.flush()
        cNick = self.nick(2)
        self.assertEqual(a.take(), [f"[lobby] <{cNick}> more"])
        self.assertEqual(b.take(), [])

    def test_clientDisconnects(self) -> None:
        a, b = self.connectMany(2)
        a.hangUp()
        self.flush()
        aNick = self.nick(0)
        self.assertEqual(b.take(), [f"[lobby] <-- {aNick} quit (connection lost)"])
        self.assertEqual(
            [m.nick for m in self.factory.chat.members.values()], [self.nick(1)]
        )
        b.sendLine(b"/who")
        self.flush()
        self.assertEqual(b.take(), [f"*** lobby (1 member): {self.nick(1)}"])


class CommandDocumentationTests(unittest.SynchronousTestCase):
    def test_everyCommandDocumented(self) -> None:
        """
        docs/protocol.md gives the usage of every command in the table.
        """
        self.assertTrue(PROTOCOL_DOC.exists(), f"{PROTOCOL_DOC} is missing")
        text = PROTOCOL_DOC.read_text(encoding="utf-8")
        missing = [c.usage for c in COMMANDS.values() if c.usage not in text]
        self.assertEqual(missing, [])

    def test_commandTable(self) -> None:
        """
        Every command is keyed by its own lower-case name and has a summary.
        """
        self.assertGreater(len(COMMANDS), 0)
        for name, command in COMMANDS.items():
            self.assertEqual(name, command.name)
            self.assertEqual(name, name.lower())
            self.assertTrue(command.summary)
            self.assertTrue(command.usage.startswith(f"/{name}"))


class TLSOnPlainPortTests(ChatTestCase):
    """
    A TLS client that reaches a plain port is told so and closed, instead of
    having its handshake relayed as noise.
    """

    # The start of a real ClientHello: handshake record, TLS 1.0 record
    # version, then a length and the handshake.
    HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)) + b"\n"

    def test_handshakeRefused(self) -> None:
        a, b = self.clients(2)
        b.send(self.HELLO)
        self.assertEqual(
            b.take(),
            ["!!! This port speaks plain text, not TLS; use the TLS port."],
        )
        self.assertTrue(b.transport.disconnecting)
        self.assertEqual(a.take(), [f"[lobby] <-- {b.nick} quit (TLS on a plain port)"])

    def test_onlyAtTheStart(self) -> None:
        """
        The same bytes later in a connection are just (cleaned) text.
        """
        a, b = self.clients(2)
        b.say("hello")
        b.send(b"\x16\x03x\n")
        self.assertEqual(
            a.take(), [f"[lobby] <{b.nick}> hello", f"[lobby] <{b.nick}> x"]
        )
        self.assertFalse(b.transport.disconnecting)
