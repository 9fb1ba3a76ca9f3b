"""
The installed C{twistd -n chat --web ...}: a WebSocket client (wsproto on
a blocking socket) and a line client in one room, and the graceful stop
that closes the WebSocket with "going away".
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any

from twisted.trial import unittest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from tests.support.helpers import ServerProcess, SocketClient

_WEB_LISTENING = re.compile(rb"Web server listening on .*port=(\d+)")
TIMEOUT = 10.0


class BlockingWebClient:
    """A WebSocket client on a blocking socket, every read bounded."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: list[Any] = []
        self.text = ""
        self.close_code: int | None = None
        self.sock.sendall(self.ws.send(Request(host=f"127.0.0.1:{port}", target="/ws")))
        self._read_until(
            lambda: any(isinstance(e, AcceptConnection) for e in self.events)
        )

    def close(self) -> None:
        self.sock.close()

    def send(self, request: dict[str, Any]) -> None:
        self.sock.sendall(self.ws.send(TextMessage(json.dumps(request))))

    def _read_until(self, done: Any) -> None:
        while not done():
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError(f"connection closed; received {self.events!r}")
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, TextMessage):
                    self.text += event.data
                    if event.message_finished:
                        self.events.append(json.loads(self.text))
                        self.text = ""
                elif isinstance(event, CloseConnection):
                    self.close_code = event.code
                    self.events.append(event)
                else:
                    self.events.append(event)

    def wait_for(self, **fields: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.events:
                if isinstance(event, dict) and all(
                    event.get(k) == v for k, v in fields.items()
                ):
                    return event
            return None

        self._read_until(lambda: found() is not None)
        event = found()
        assert event is not None
        self.events.remove(event)
        return event

    def wait_closed(self) -> int | None:
        self._read_until(lambda: self.close_code is not None)
        return self.close_code


class WebServerTests(unittest.TestCase):
    def test_webLineAndShutdown(self) -> None:
        server = ServerProcess(
            self,
            options=["--web", "tcp:0:interface=127.0.0.1", "--database", ":memory:"],
        )
        [found] = server.logged(_WEB_LISTENING)
        web = BlockingWebClient(int(found.group(1)))
        self.addCleanup(web.close)
        welcome = web.wait_for(type="welcome")
        assert server.tcp_port is not None
        line = SocketClient(self, server.tcp_port)
        line.welcome()
        web.send({"type": "join", "room": "lobby", "id": 1})
        web.wait_for(type="ok", id=1)
        nick = welcome["nick"].encode()
        line.read_until(lambda got: got == b"[lobby] --> " + nick + b" joined\r\n")
        web.send({"type": "say", "room": "lobby", "text": "hi from the web"})
        line.read_until(
            lambda got: got == b"[lobby] <" + nick + b"> hi from the web\r\n"
        )
        line.send(b"hi from nc\n")
        said = web.wait_for(type="said")
        self.assertEqual(said["text"], "hi from nc")
        server.stop()
        web.wait_for(type="closing")
        self.assertEqual(web.wait_closed(), 1001)
