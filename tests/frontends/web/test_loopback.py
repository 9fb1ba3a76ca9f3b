"""
The web front end over real loopback TCP, on the real reactor: Twisted's
own WebSocket client and a line client in one room, and the HTTP side.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet import endpoints, reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.websocket import WebSocketClientEndpoint, WebSocketTransport

from chatservice.frontends.irc.protocol import IRCFactory
from chatservice.frontends.web.session import WebFactory
from chatservice.frontends.web.site import web_site
from tests.support.helpers import TIMEOUT, LineClient, LoopbackChat, deferred_test

Event = dict[str, Any]


class WebClient:
    """A WebSocket client that keeps the events it is sent, and waits for one."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.transport: WebSocketTransport | None = None
        self._waiting: tuple[Callable[[Event], bool], Deferred[Event]] | None = None
        self._cursor = 0
        self.lost: Deferred[None] = Deferred()

    def buildProtocol(self, url: str) -> WebClient:
        return self

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        self.events.append(json.loads(message))
        if self._waiting is not None:
            self._check()

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        raise AssertionError("the server sends text")

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        self.lost.callback(None)

    def send(self, request: Event) -> None:
        assert self.transport is not None
        self.transport.sendTextMessage(json.dumps(request))

    def _check(self) -> None:
        assert self._waiting is not None
        match, d = self._waiting
        for index in range(self._cursor, len(self.events)):
            if match(self.events[index]):
                self._cursor = index + 1
                self._waiting = None
                d.callback(self.events[index])
                return

    def next(self, **fields: Any) -> Deferred[Event]:
        """The next event (after the last one waited for) with C{fields}."""
        d: Deferred[Event] = Deferred()
        self._waiting = (lambda e: all(e.get(k) == v for k, v in fields.items()), d)
        self._check()
        return d.addTimeout(TIMEOUT, reactor)


class HTTPGet(Protocol):
    """One HTTP/1.0 request; the whole response once the server closes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data = b""
        self.done: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(f"GET {self.path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.done.callback(self.data)


class LoopbackWebTests(unittest.TestCase):
    async def start(self) -> tuple[LoopbackChat, int]:
        chat = await LoopbackChat(self).start()
        line_factory = chat.factory
        self.web = WebFactory(line_factory.chat, line_factory.admission)
        endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        port = await endpoint.listen(web_site(self.web))

        async def stop() -> None:
            # Every connection of both front ends closed, and waited for.
            await line_factory.admission.shut_down(line_factory.chat, 5)
            for client in self.clients:
                await client.lost
            await port.stopListening()

        self.clients: list[WebClient] = []
        self.addCleanup(lambda: Deferred.fromCoroutine(stop()))
        return chat, port.getHost().port

    async def web_client(self, port: int) -> WebClient:
        client = WebClient()
        endpoint = WebSocketClientEndpoint.new(reactor, f"ws://127.0.0.1:{port}/ws")
        await Deferred.fromCoroutine(endpoint.connect(client))
        self.clients.append(client)
        await client.next(type="welcome")
        return client

    async def irc_client(self, chat: LoopbackChat, nick: str) -> LineClient:
        """
        An IRC user, registered as C{nick}, on an IRC listener of the same
        chat and admission.
        """
        line_factory = chat.factory
        irc = IRCFactory(line_factory.chat, line_factory.admission, "irc.test")
        server = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        port = await server.listen(irc)
        client = LineClient()
        endpoint = endpoints.TCP4ClientEndpoint(
            reactor, "127.0.0.1", port.getHost().port
        )
        await endpoints.connectProtocol(endpoint, client).addTimeout(TIMEOUT, reactor)

        async def stop() -> None:
            if client.lost_reason is None and client.transport is not None:
                client.transport.loseConnection()
            await client.when_lost()
            await port.stopListening()

        self.addCleanup(lambda: Deferred.fromCoroutine(stop()))
        client.send(f"NICK {nick}", f"USER {nick} 0 * :{nick}")
        await client.next_line(lambda line: f" 001 {nick} " in line)
        return client

    async def get(self, port: int, path: str) -> bytes:
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        request = HTTPGet(path)
        await endpoints.connectProtocol(endpoint, request)
        return await request.done.addTimeout(TIMEOUT, reactor)

    @deferred_test
    async def test_webAndLineUsers(self) -> None:
        """
        A web user and a line user in one room see each other join, talk
        and leave, in order, and exchange private messages.
        """
        chat, port = await self.start()
        line = await chat.connect()
        web = await self.web_client(port)
        web.send({"type": "nick", "nick": "webby"})
        web.send({"type": "join", "room": "lobby", "id": 1})
        await web.next(type="ok", id=1)
        await line.next_line("[lobby] --> webby joined")
        web.send({"type": "say", "room": "lobby", "text": "one"})
        web.send({"type": "say", "room": "lobby", "text": "two"})
        await line.next_line("[lobby] <webby> one")
        await line.next_line("[lobby] <webby> two")
        line.send("three", "/me four", "/msg webby five")
        said = await web.next(type="said")
        self.assertEqual((said["nick"], said["text"]), ("guest1", "three"))
        action = await web.next(type="action")
        self.assertEqual(action["text"], "four")
        private = await web.next(type="private")
        self.assertEqual((private["sender"], private["text"]), ("guest1", "five"))
        web.send({"type": "msg", "nick": "guest1", "text": "six"})
        await line.next_line("*webby* six")
        web.send({"type": "quit", "message": "bye"})
        await web.next(type="goodbye")
        await line.next_line("[lobby] <-- webby quit (bye)")
        await web.lost

    @deferred_test
    async def test_webLineAndIRCUsers(self) -> None:
        """
        Web, line and IRC users in one room see each other's joins and
        lines, in order, and private messages reach each from the others.
        """
        chat, port = await self.start()
        line = await chat.connect()
        irc = await self.irc_client(chat, "ircy")
        irc.send("JOIN #lobby")
        await line.next_line("[lobby] --> ircy joined")
        web = await self.web_client(port)
        web.send({"type": "nick", "nick": "webby"})
        web.send({"type": "join", "room": "lobby", "id": 1})
        await web.next(type="ok", id=1)
        await line.next_line("[lobby] --> webby joined")
        await irc.next_line(":webby!webby@chatservice JOIN #lobby")
        web.send({"type": "say", "room": "lobby", "text": "from the web"})
        await line.next_line("[lobby] <webby> from the web")
        await irc.next_line(":webby!webby@chatservice PRIVMSG #lobby :from the web")
        irc.send("PRIVMSG #lobby :from IRC", "PRIVMSG webby :psst web")
        await line.next_line("[lobby] <ircy> from IRC")
        said = await web.next(type="said", nick="ircy")
        self.assertEqual(said["text"], "from IRC")
        private = await web.next(type="private")
        self.assertEqual((private["sender"], private["text"]), ("ircy", "psst web"))
        line.send("from the line", "/msg ircy psst irc")
        await irc.next_line(":guest1!guest1@chatservice PRIVMSG #lobby :from the line")
        await irc.next_line(":guest1!guest1@chatservice PRIVMSG ircy :psst irc")
        said = await web.next(type="said", nick="guest1")
        self.assertEqual(said["text"], "from the line")
        web.send({"type": "msg", "nick": "ircy", "text": "back from the web"})
        await irc.next_line(":webby!webby@chatservice PRIVMSG ircy :back from the web")

    @deferred_test
    async def test_page(self) -> None:
        """
        The page is served at / with the security headers; its script too;
        a directory is not listed.
        """
        _, port = await self.start()
        response = await self.get(port, "/")
        head, _, body = response.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.0 200"), head)
        headers = head.lower()
        for header in (
            b"content-security-policy: default-src 'none'; script-src 'self';",
            b"connect-src 'self'",
            b"frame-ancestors 'none'",
            b"x-content-type-options: nosniff",
            b"referrer-policy: no-referrer",
        ):
            self.assertIn(header, headers)
        self.assertIn(b'<script type="module" src="app.js">', body)
        self.assertNotIn(b"<script>", body)
        script = await self.get(port, "/app.js")
        self.assertIn(b"javascript", script.partition(b"\r\n\r\n")[0].lower())
        missing = await self.get(port, "/nothing")
        self.assertTrue(missing.startswith(b"HTTP/1.0 404"), missing[:40])
        self.assertIn(b"content-security-policy", missing.lower())
