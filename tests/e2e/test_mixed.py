"""
Line, IRC and web users in one room, through the installed C{twistd -n
chat} over real loopback sockets, as people would use it.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.test_web import _WEB_LISTENING, BlockingWebClient
from tests.support.helpers import (
    _IRC_LISTENING,
    ServerProcess,
    SocketClient,
    irc_server,
)


class MixedTests(SynchronousTestCase):
    def test_lineAndIRCInOneRoom(self) -> None:
        server, irc_port = irc_server(self)
        assert server.tcp_port is not None
        irc = SocketClient(self, irc_port)
        irc.send(b"NICK alice\r\nUSER alice 0 * :Alice\r\nJOIN #lobby\r\n")
        irc.read_until(lambda line: b" 366 alice #lobby " in line)
        line = SocketClient(self, server.tcp_port)
        line.welcome()
        line.send(b"/nick bob\r\nhello from nc\r\n/me waves\r\n/msg alice psst\r\n")
        self.assertEqual(
            irc.read_until(lambda got: b"PRIVMSG #lobby" in got),
            b":bob!bob@chatservice PRIVMSG #lobby :hello from nc\r\n",
        )
        self.assertEqual(
            irc.read_until(lambda got: b"PRIVMSG" in got),
            b":bob!bob@chatservice PRIVMSG #lobby :\x01ACTION waves\x01\r\n",
        )
        self.assertEqual(
            irc.read_until(lambda got: b"PRIVMSG" in got),
            b":bob!bob@chatservice PRIVMSG alice :psst\r\n",
        )
        irc.send(b"PRIVMSG #lobby :hi bob\r\nPRIVMSG bob :back\r\nNICK alicia\r\n")
        self.assertEqual(
            line.read_until(lambda got: got.startswith(b"[lobby] <alice>")),
            b"[lobby] <alice> hi bob\r\n",
        )
        self.assertEqual(
            line.read_until(lambda got: got.startswith(b"*")), b"*alice* back\r\n"
        )
        self.assertEqual(
            line.read_until(lambda got: b"known as" in got),
            b"[lobby] --- alice is now known as alicia\r\n",
        )
        irc.send(b"QUIT :bye\r\n")
        self.assertEqual(
            line.read_until(lambda got: b"quit" in got),
            b"[lobby] <-- alicia quit (bye)\r\n",
        )

    def test_lineIRCAndWebInOneRoom(self) -> None:
        """
        A line user, an IRC user and a web user in one room, over real
        sockets: each sees the others' joins, lines and private messages,
        in order.
        """
        server = ServerProcess(
            self,
            options=[
                "--irc-port",
                "tcp:0:interface=127.0.0.1",
                "--web",
                "tcp:0:interface=127.0.0.1",
                "--database",
                ":memory:",
            ],
        )
        assert server.tcp_port is not None
        irc_port, web_port = (
            listening(server, pattern) for pattern in (_IRC_LISTENING, _WEB_LISTENING)
        )
        web = BlockingWebClient(web_port)
        self.addCleanup(web.close)
        web.wait_for(type="welcome")
        web.send({"type": "nick", "nick": "carol", "id": 1})
        web.wait_for(type="ok", id=1)
        web.send({"type": "join", "room": "lobby", "id": 2})
        web.wait_for(type="ok", id=2)

        irc = SocketClient(self, irc_port)
        irc.send(b"NICK alice\r\nUSER alice 0 * :Alice\r\nJOIN #lobby\r\n")
        irc.read_until(lambda line: b" 366 alice #lobby " in line)
        line = SocketClient(self, server.tcp_port)
        guest = line.welcome()
        line.send(b"/nick bob\r\n")
        line.read_until(lambda got: b"known as bob" in got)
        self.assertEqual(
            irc.read_until(lambda got: b" JOIN " in got or b" NICK " in got),
            f":{guest}!{guest}@chatservice JOIN #lobby\r\n".encode(),
        )
        self.assertEqual(
            irc.read_until(lambda got: b" NICK " in got),
            f":{guest}!{guest}@chatservice NICK :bob\r\n".encode(),
        )
        self.assertEqual(
            fields(next_of(web, "joined", "renamed")),
            {"type": "joined", "room": "lobby", "nick": "alice"},
        )
        self.assertEqual(
            fields(next_of(web, "joined", "renamed")),
            {"type": "joined", "room": "lobby", "nick": guest},
        )
        self.assertEqual(
            fields(next_of(web, "joined", "renamed")),
            {"type": "renamed", "room": "lobby", "old": guest, "new": "bob"},
        )

        line.send(b"hello from nc\r\n/msg carol psst\r\n")
        self.assertEqual(
            fields(next_of(web, "said", "private")),
            {"type": "said", "room": "lobby", "nick": "bob", "text": "hello from nc"},
        )
        self.assertEqual(
            fields(next_of(web, "said", "private")),
            {"type": "private", "sender": "bob", "text": "psst", "notice": False},
        )
        self.assertEqual(
            irc.read_until(lambda got: b"PRIVMSG" in got),
            b":bob!bob@chatservice PRIVMSG #lobby :hello from nc\r\n",
        )

        irc.send(b"PRIVMSG #lobby :hi all\r\nPRIVMSG carol :from irc\r\n")
        self.assertEqual(
            fields(next_of(web, "said", "private")),
            {"type": "said", "room": "lobby", "nick": "alice", "text": "hi all"},
        )
        self.assertEqual(
            fields(next_of(web, "said", "private")),
            {"type": "private", "sender": "alice", "text": "from irc", "notice": False},
        )
        self.assertEqual(
            line.read_until(lambda got: got.startswith(b"[lobby] <")),
            b"[lobby] <alice> hi all\r\n",
        )

        web.send({"type": "say", "room": "lobby", "text": "hi from the web"})
        web.send({"type": "msg", "nick": "bob", "text": "web to line"})
        web.send({"type": "msg", "nick": "alice", "text": "web to irc"})
        self.assertEqual(
            line.read_until(lambda got: b"carol" in got),
            b"[lobby] <carol> hi from the web\r\n",
        )
        self.assertEqual(
            line.read_until(lambda got: b"carol" in got), b"*carol* web to line\r\n"
        )
        said, private = (irc.read_until(lambda got: b"PRIVMSG" in got) for _ in "ab")
        self.assertTrue(said.startswith(b":carol!"), said)
        self.assertTrue(said.endswith(b" PRIVMSG #lobby :hi from the web\r\n"), said)
        self.assertTrue(private.endswith(b" PRIVMSG alice :web to irc\r\n"), private)

        # The others see the web user leave and join again.
        web.send({"type": "part", "room": "lobby"})
        web.send({"type": "join", "room": "lobby", "id": 3})
        web.wait_for(type="ok", id=3)
        self.assertEqual(
            line.read_until(lambda got: b"carol" in got), b"[lobby] <-- carol left\r\n"
        )
        self.assertEqual(
            line.read_until(lambda got: b"carol" in got),
            b"[lobby] --> carol joined\r\n",
        )
        part = irc.read_until(lambda got: b" PART " in got or b" JOIN " in got)
        self.assertTrue(part.startswith(b":carol!") and b" PART #lobby" in part, part)
        join = irc.read_until(lambda got: b" JOIN " in got)
        self.assertTrue(join.startswith(b":carol!"), join)
        self.assertTrue(join.endswith(b" JOIN #lobby\r\n"), join)


def listening(server: ServerProcess, pattern: re.Pattern[bytes]) -> int:
    """The port of a listener the server logged as C{pattern} says."""
    [found] = server.logged(pattern)
    return int(found.group(1))


def next_of(web: BlockingWebClient, *types: str) -> dict[str, Any]:
    """
    The web client's next event of one of C{types}, in the order the server
    sent them; events of other types before it are dropped.
    """

    def first() -> dict[str, Any] | None:
        for event in web.events:
            if isinstance(event, dict) and event.get("type") in types:
                return event
        return None

    web._read_until(lambda: first() is not None)
    event = first()
    assert event is not None
    del web.events[: web.events.index(event) + 1]
    return event


def fields(event: dict[str, Any]) -> dict[str, Any]:
    """C{event} without its time, which the server sets."""
    return {k: v for k, v in event.items() if k != "time"}
