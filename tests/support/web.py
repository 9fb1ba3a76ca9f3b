"""
An in-memory web client for the web front end: the real HTTP site, the
real WebSocket upgrade and wsproto on both sides, on a L{StringTransport},
beside the line clients of a L{Harness}.

  - L{web_front_end}: a web factory and site on a harness's chat.
  - L{WebClient}: one browser-like connection; what it sends is masked
    frames, what it reads back is decoded events.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from chatservice.frontends.web.session import WebFactory, WebSession
from chatservice.frontends.web.site import ChatSite, web_site
from tests.support.memory import Harness

HOST = "chat.example:8080"


def web_front_end(harness: Harness, origins: tuple[str, ...] = ()) -> ChatSite:
    """A web front end on C{harness}'s chat and admission, and its site."""
    factory = WebFactory(
        harness.chat, harness.admission, harness.accounts, operators=harness.operators
    )
    return web_site(factory, origins)


class WebClient:
    """
    One WebSocket connection to C{site}, from C{address}.

    @ivar status: the HTTP status of a refused handshake, if it was refused.
    @ivar close_code: the code of the server's close frame, once it came.
    """

    def __init__(
        self,
        harness: Harness,
        site: ChatSite,
        address: IAddress | None = None,
        origin: str | None = None,
        host: str = HOST,
    ) -> None:
        self.harness = harness
        address = address or harness.address()
        self.channel = site.buildProtocol(address)
        assert self.channel is not None
        self.transport = StringTransport(
            peerAddress=address, hostAddress=IPv4Address("TCP", "127.0.0.1", 8080)
        )
        self.channel.makeConnection(self.transport)
        self.ws = WSConnection(ConnectionType.CLIENT)
        headers = [] if origin is None else [(b"origin", origin.encode())]
        self.accepted = False
        self.status: int | None = None
        self.close_code: int | None = None
        self.pings: list[bytes] = []
        self._pending: list[dict[str, Any]] = []
        self._text = ""
        self.feed(self.ws.send(Request(host=host, target="/ws", extra_headers=headers)))

    @property
    def session(self) -> WebSession:
        """The server's session for this client."""
        sessions = [
            s
            for s in self.harness.admission.open
            if isinstance(s, WebSession) and s.transport is self.transport
        ]
        assert len(sessions) == 1, sessions
        return sessions[0]

    def feed(self, data: bytes) -> None:
        """Hand the server C{data} as one chunk, and end the turn."""
        self.channel.dataReceived(data)
        self.harness.turn()

    def send(self, request: dict[str, Any] | str) -> None:
        """Send C{request}, a JSON object or any text, as one message."""
        text = request if isinstance(request, str) else json.dumps(request)
        self.feed(self.ws.send(TextMessage(text)))

    def send_bytes(self, data: bytes) -> None:
        self.feed(self.ws.send(BytesMessage(data)))

    def ping(self) -> None:
        self.feed(self.ws.send(Ping(b"hi")))

    def events(self) -> list[dict[str, Any]]:
        """
        Every event the server sent since last asked, each decoded from a
        message that must be a JSON object with a type.
        """
        data = self.transport.value()
        self.transport.clear()
        if data:
            self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.accepted = True
            elif isinstance(event, RejectConnection):
                self.status = event.status_code
            elif isinstance(event, RejectData):
                pass
            elif isinstance(event, TextMessage):
                self._text += event.data
                if event.message_finished:
                    decoded = json.loads(self._text)
                    self._text = ""
                    assert isinstance(decoded, dict) and "type" in decoded
                    self._pending.append(decoded)
            elif isinstance(event, CloseConnection):
                self.close_code = event.code
            elif isinstance(event, Message):
                raise AssertionError(f"unexpected message {event!r}")
            else:
                self.pings.append(getattr(event, "payload", b""))
        found, self._pending = self._pending, []
        return found

    def types(self) -> list[str]:
        return [event["type"] for event in self.events()]

    def request(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """Send C{request} and return what came back."""
        self.events()
        self.send(request)
        return self.events()

    @property
    def closing(self) -> bool:
        return bool(self.transport.disconnecting)

    def lost(self) -> None:
        """The connection is gone, as the reactor would say."""
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.harness.turn()
