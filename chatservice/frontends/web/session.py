"""
One WebSocket connection, and the factory that admits them.

L{WebSession} is a L{StreamSession} whose lines are WebSocket messages:
flood control, C{--max-line}, the sendq, writing straight to the socket,
the idle timeout, the close grace and admission are the stream session's,
unchanged. Twisted's WebSocket layer (L{twisted.web.websocket}, on wsproto)
does the handshake and reads the client's frames, and hands each message
to L{WebSession.textMessageReceived}; the session writes the frames the
renderer built once for every recipient straight to the connection's
transport (see L{chatservice.frontends.web.frames}), and closes through
the WebSocket layer, so that the close handshake is wsproto's.
"""

from __future__ import annotations

import json
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.websocket import WebSocketTransport
from wsproto.utilities import LocalProtocolError

from chatservice.core import errors, events
from chatservice.core.accounts import Accounts
from chatservice.core.chat import Chat
from chatservice.core.errors import ChatError
from chatservice.core.rooms import Member
from chatservice.core.server_operators import ServerOperators
from chatservice.core.stats import Stats
from chatservice.frontends.admission import Admission
from chatservice.frontends.limits import Limits
from chatservice.frontends.stream import StreamFactory, StreamSession
from chatservice.frontends.web import frames, requests
from chatservice.frontends.web.renderer import (
    Answered,
    JSONRenderer,
    RefusedRequest,
    RequestId,
    encode,
    error_object,
)

log = Logger()

# Marks a binary message among the lines the stream session queues: no
# UTF-8 text starts with this byte, so it cannot be taken for a request.
_BINARY = b"\xff"
# How a say request starts, as the web client and most programs write it.
_SAY = b'{"type":"say",'


# A say request as the web client and most programs write it, up to its
# room's string, and what comes between that and its text's string.
_SAY_ROOM = '{"type":"say","room":"'
_SAY_TEXT = ',"text":"'


def _say(line: bytes) -> tuple[str, str] | None:
    """
    The room and text of the say request C{line}, if it is one with no id
    and no other field, and both are strings with more than white space;
    otherwise None.

    The common spelling, fields in the client's order with no white space,
    is read with json's own string scanner (C{json.decoder.scanstring}, in
    C; the stubs leave it out), without building a dict: the strings are
    those C{json.loads} gives. Any other spelling goes to C{json.loads}.
    """
    try:
        message = line.decode("utf-8")
        if message.startswith(_SAY_ROOM):
            room, at = scanstring(message, len(_SAY_ROOM))
            if message.startswith(_SAY_TEXT, at):
                text, at = scanstring(message, at + len(_SAY_TEXT))
                if at == len(message) - 1 and message[at] == "}":
                    return (room, text) if room.strip() and text.strip() else None
        found = json.loads(message)
    except ValueError:
        return None
    if type(found) is not dict or len(found) != 3:
        return None
    room = found.get("room")
    text = found.get("text")
    if (
        found.get("type") != "say"
        or type(room) is not str
        or type(text) is not str
        or not room.strip()
        or not text.strip()
    ):
        return None
    return room, text


class WebSession(StreamSession):
    """
    One web client's connection: a member from the start, under a guest
    nickname, in no room until it joins one.

    @param raw: the connection's byte transport, under the WebSocket layer:
        what the session writes its frames to.
    """

    factory: WebFactory
    _ws: WebSocketTransport | None = None
    # The client is sending a message already refused as too long.
    _oversized = False

    def __init__(self, raw: ITransport) -> None:
        self._raw = raw

    # twisted.web.websocket.WebSocketProtocol

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self._ws = transport

    def negotiationFinished(self) -> None:
        raw = self._raw
        # The HTTP channel registered itself as the producer of the
        # transport; the stream session's sendq takes its place.
        cast(IConsumer, raw).unregisterProducer()
        self.transport = raw
        self.connectionMade()

    def textMessageReceived(self, message: str) -> None:
        data: bytes | None = message.encode("utf-8")
        self._message(data)

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        self._message(_BINARY)

    def messagesReceived(self, messages: list[bytes | None]) -> None:
        """
        The text messages of one read, as UTF-8, read without the WebSocket
        layer (see L{chatservice.frontends.web.wire}): handled together, so
        that L{linesReceived} sees a run of them.
        """
        self._stats.lines_received += len(messages)
        if not self._reading:
            return
        self._accept(messages)

    def pongReceived(self, payload: bytes) -> None:
        pass

    def _message(self, data: bytes | None) -> None:
        self._stats.lines_received += 1
        if not self._reading:
            return
        if self.timeOut is not None:
            self.resetTimeout()
        if self._oversized:
            # The end of a message whose beginning was thrown away.
            self._oversized = False
            data = None
        self._accept([data])

    def arrived(self, size: int, partial: int) -> int:
        """
        C{size} bytes came from the client, and the message being read is
        C{partial} characters so far: count them, and return how much of
        the partial message to keep (nothing, once it is too long; its end
        is then refused as too long, and the connection goes on).
        """
        self._stats.bytes_in += size
        if self.timeOut is not None:
            self.resetTimeout()
        if partial > self.limits.max_line:
            self._oversized = True
            return 0
        return partial

    # The stream session

    def start(self) -> Member:
        chat = self.chat
        member = chat.connect(self, chat.guest_nick())
        chat.tell(member, events.Welcome(member.nick, None))
        if chat.motd:
            chat.tell(member, events.Motd(chat.motd))
        return member

    @property
    def accounts(self) -> Accounts | None:
        return self.factory.accounts

    @property
    def operators(self) -> ServerOperators | None:
        return self.factory.operators

    def me(self) -> Member:
        member = self.member
        assert member is not None
        return member

    def linesReceived(self, lines: list[bytes | None], start: int) -> int:
        # Most requests are lines said in a room: a run of say requests to
        # one room, with no id and no other field, goes to the room in one
        # call, as the line and IRC front ends do with theirs. Anything else
        # (another request, an id to answer, another room, a field of the
        # wrong type, a refusal to come) is left to lineReceived.
        limit = self.limits.max_line
        texts: list[str] = []
        name = ""
        for index in range(start, len(lines)):
            line = lines[index]
            if line is None or len(line) > limit or not line.startswith(_SAY):
                break
            said = _say(line)
            if said is None:
                break
            room, text = said
            if not texts:
                name = room
            elif room != name:
                break
            texts.append(requests.clean(text))
        if not texts:
            return start
        chat = self.chat
        member = self.me()
        try:
            chat.say_all(member, chat.room_of(member, requests.clean(name)), texts)
        except ChatError as e:
            # One refusal for each, as each would have had.
            for _ in texts:
                self._refuse(e, None)
        return start + len(texts)

    def lineReceived(self, line: bytes) -> Deferred[None] | None:
        if line.startswith(_BINARY):
            self._refuse(requests.BinaryMessage(), None)
            return None
        try:
            parsed = requests.parse(line)
        except requests.Invalid as e:
            self._refuse(e.error, e.id)
            return None
        id = parsed.id
        try:
            waiting = parsed.request.handler(self, parsed.arguments)
        except ChatError as e:
            self._refuse(e, id)
            return None
        if waiting is None:
            self._answer(id)
            return None
        return waiting.addCallbacks(
            lambda _: self._answer(id), lambda failure: self._failed(failure, id)
        )

    def _answer(self, id: RequestId | None) -> None:
        if id is not None:
            self.tell(Answered(id))

    def _refuse(self, error: ChatError, id: RequestId | None) -> None:
        self.tell(RefusedRequest(error, id))

    def _failed(self, failure: Failure, id: RequestId | None) -> None:
        """
        An account request failed: a refusal is told as one, a bug is
        logged and told as C{failed}, never with a password.
        """
        if failure.check(ChatError):
            self._refuse(cast(ChatError, failure.value), id)
        else:
            log.failure("A web account request failed", failure)
            self._refuse(errors.Failed(), id)

    def hang_up(self) -> None:
        """
        Send the close frame: going away when the server stops, a policy
        violation when a limit drops the client, normal otherwise.
        """
        if not self.factory.admission.accepting_input:
            code = frames.GOING_AWAY
        elif self._dropped is not None:
            code = frames.POLICY_VIOLATION
        else:
            code = frames.NORMAL
        assert self._ws is not None
        try:
            self._ws.loseConnection(code)
        except LocalProtocolError:
            # The client began the close handshake, which wsproto answered.
            super().hang_up()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self.transport is None:
            # Lost before the handshake finished: never admitted to the chat.
            self.factory.admission.release(self)
            return
        super().connectionLost(
            reason
        ) if reason is not None else super().connectionLost()


class WebRefusal:
    """
    A WebSocket connection the admission refused: it is told why, as an
    error event, and closed with "try again later".
    """

    def __init__(self, error: ChatError, stats: Stats) -> None:
        self.text = encode(error_object(error)).decode("utf-8")
        self.stats = stats
        self._ws: WebSocketTransport | None = None

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self._ws = transport

    def negotiationFinished(self) -> None:
        assert self._ws is not None
        self.stats.bytes_out += len(self.text)
        self._ws.sendTextMessage(self.text)
        self._ws.loseConnection(frames.TRY_AGAIN_LATER)

    def textMessageReceived(self, message: str) -> None:
        pass

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        pass

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass


class WebFactory(StreamFactory):
    """
    Builds L{WebSession}s for the one chat, through the one admission.

    @param accounts: the accounts, if the server keeps them.
    @param operators: the server operators, if any may be.
    """

    protocol = WebSession

    def __init__(
        self,
        chat: Chat,
        admission: Admission,
        accounts: Accounts | None = None,
        limits: Limits | None = None,
        operators: ServerOperators | None = None,
    ) -> None:
        super().__init__(chat, admission, accounts, limits, operators)
        # Events are dated by the reactor's clock (the wall clock).
        self.renderer = JSONRenderer(self.reactor.seconds)

    def session(self, raw: ITransport) -> WebSession | WebRefusal:
        """
        The WebSocket protocol for a connection upgraded on the byte
        transport C{raw}: a session, or a refusal if the admission says so.
        """
        address = raw.getPeer()
        refused = self.admission.refusal(address)
        if refused is not None:
            return WebRefusal(refused, self.stats)
        session = WebSession(raw)
        session.factory = self
        self.admission.admit(session, address)
        return session

    def buildProtocol(self, addr: Any) -> None:
        raise TypeError("web sessions are built by session(), for an upgraded request")
