"""
What a web client may ask: JSON requests, checked, and carried out through
the core's operations.

A request is one JSON object per WebSocket text message, with a string
C{type} naming one of L{REQUESTS}, the fields that request takes, and an
optional C{id} (a string or an integer). Fields a request does not take are
ignored, so that a newer client can talk to an older server. A request
with an C{id} is answered, once what it did has been told, by
C{{"type": "ok", "id": ...}} or by an C{error} with that C{id}.

The web client turns the slash commands its user types into these
requests; the server speaks only JSON, so that a bot needs no command
parser.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, cast

from twisted.internet.defer import Deferred

from chatservice.core import errors, events
from chatservice.core.accounts import Accounts
from chatservice.core.chat import Chat
from chatservice.core.durations import DURATION_MAX, parse_duration
from chatservice.core.errors import ChatError
from chatservice.core.events import MaskKind, Setting
from chatservice.core.history import HISTORY_MAX
from chatservice.core.moderation import FLAGS
from chatservice.core.rooms import Member, Room
from chatservice.core.server_operators import AUDIT_MAX, ServerOperators
from chatservice.frontends.web.renderer import EmptyHistory, RequestId

# The longest request id, in characters, given back.
ID_MAX = 64
# How many lines a history request gives when it does not say.
HISTORY_DEFAULT = 50


# Why a request is refused before it is carried out.


@dataclass(eq=False)
class InvalidJSON(ChatError):
    """The message is not a JSON object; C{reason} says what is wrong."""

    code = "invalid_json"
    reason: str


@dataclass(eq=False)
class UnknownType(ChatError):
    """No request has the C{type} given, C{given}."""

    code = "unknown_type"
    given: str


@dataclass(eq=False)
class BadField(ChatError):
    """The field C{field} is missing or not C{expected}."""

    code = "bad_field"
    field: str
    expected: str


@dataclass(eq=False)
class BinaryMessage(ChatError):
    """A binary message came: requests are text."""

    code = "binary_message"


class Requester(Protocol):
    """Who asks: a web connection's member, and what it may use."""

    @property
    def chat(self) -> Chat: ...

    @property
    def accounts(self) -> Accounts | None: ...

    @property
    def operators(self) -> ServerOperators | None: ...

    def me(self) -> Member: ...


Handler = Callable[[Requester, dict[str, Any]], "Deferred[None] | None"]


@dataclass(frozen=True)
class Field:
    """
    One field of a request: C{kind} C{str}, C{int} or C{bool}; a required
    string must not be empty. C{kind} L{object} takes any JSON value,
    null included, for the handler to check: a room setting's value, a
    duration given as seconds or as text.
    """

    name: str
    kind: type = str
    required: bool = True

    @property
    def expected(self) -> str:
        if self.kind is int:
            return "an integer"
        if self.kind is bool:
            return "a boolean"
        if self.kind is object:
            return "a value"
        return "a non-empty string" if self.required else "a string"


@dataclass(frozen=True)
class Request:
    """One kind of request: its C{type}, its fields and what it does."""

    type: str
    fields: tuple[Field, ...]
    handler: Handler


@dataclass(frozen=True)
class Parsed:
    """A request read from a message, checked: what to do, with what."""

    request: Request
    arguments: dict[str, Any]
    id: RequestId | None


class Invalid(Exception):
    """A message that is no valid request: C{error}, and its C{id} if any."""

    def __init__(self, error: ChatError, id: RequestId | None) -> None:
        super().__init__(error)
        self.error = error
        self.id = id


def clean(text: str) -> str:
    """
    C{text} with any lone surrogate (a JSON escape can make one; no UTF-8
    can) replaced, so that nothing downstream fails to encode it.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _id(message: dict[str, Any]) -> RequestId | None:
    value = message.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    if isinstance(value, str) and len(value) > ID_MAX:
        return None
    return clean(value) if isinstance(value, str) else value


def parse(data: bytes) -> Parsed:
    """
    The request in the message C{data}, checked; raises L{Invalid} saying
    why it is none.
    """
    try:
        message = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise Invalid(
            InvalidJSON(str(e).partition(":")[0] or "invalid"), None
        ) from None
    if not isinstance(message, dict):
        raise Invalid(InvalidJSON("not an object"), None)
    id = _id(message)
    if "id" in message and id is None and message["id"] is not None:
        raise Invalid(
            BadField("id", f"a string of at most {ID_MAX} or an integer"), None
        )
    kind = message.get("type")
    if not isinstance(kind, str):
        raise Invalid(BadField("type", "a string"), id)
    request = REQUESTS.get(kind)
    if request is None:
        raise Invalid(UnknownType(clean(kind)[:ID_MAX]), id)
    arguments: dict[str, Any] = {}
    for field in request.fields:
        value = message.get(field.name)
        if field.kind is object:
            if field.name in message:
                arguments[field.name] = (
                    clean(value) if isinstance(value, str) else value
                )
            elif field.required:
                raise Invalid(BadField(field.name, field.expected), id)
            continue
        if value is None:
            if field.required:
                raise Invalid(BadField(field.name, field.expected), id)
            continue
        if not isinstance(value, field.kind) or (
            field.kind is int and isinstance(value, bool)
        ):
            raise Invalid(BadField(field.name, field.expected), id)
        if isinstance(value, str):
            if field.required and not value.strip():
                raise Invalid(BadField(field.name, field.expected), id)
            value = clean(value)
        arguments[field.name] = value
    return Parsed(request, arguments, id)


# The requests


def _say(who: Requester, a: dict[str, Any]) -> None:
    chat = who.chat
    chat.say(who.me(), chat.room_of(who.me(), a["room"]), a["text"])


def _me(who: Requester, a: dict[str, Any]) -> None:
    chat = who.chat
    chat.act(who.me(), chat.room_of(who.me(), a["room"]), a["text"])


def _join(who: Requester, a: dict[str, Any]) -> None:
    # A web client shows who is in the room it enters.
    chat = who.chat
    room = chat.join(who.me(), a["room"], key=a.get("key"))
    chat.names(who.me(), room)


def _part(who: Requester, a: dict[str, Any]) -> None:
    chat = who.chat
    member = who.me()
    room = chat.room_of(member, a["room"])
    reason = a.get("reason", "")
    chat.part(member, room, reason)
    # The leaver sees itself leave, as the room does.
    chat.tell(member, events.Left(room.name, member.nick, reason))


def _nick(who: Requester, a: dict[str, Any]) -> None:
    who.chat.rename(who.me(), a["nick"])


def _msg(who: Requester, a: dict[str, Any]) -> None:
    who.chat.whisper(who.me(), a["nick"], a["text"])


def _history(who: Requester, a: dict[str, Any]) -> Deferred[None] | None:
    chat = who.chat
    if chat.history is None:
        raise errors.NoHistory()
    n = a.get("n", HISTORY_DEFAULT)
    if not 1 <= n <= HISTORY_MAX:
        raise BadField("n", f"an integer from 1 to {HISTORY_MAX}")
    member = who.me()
    room = chat.room_of(member, a["room"])
    if "before" in a:
        return _run(_older(chat, member, room, n, a["before"]))
    if not chat.replay_history(member, room, n):
        chat.tell(member, EmptyHistory(room.name))
    return None


async def _older(chat: Chat, member: Member, room: Room, n: int, before: str) -> None:
    """
    A page of older lines, told as a C{replay} whose C{before} is the
    cursor of the next older page (null at the beginning of the history).
    """
    page = await chat.history_page(member, room, n, before)
    lines = [
        events.HistoryLine(entry.time, entry.kind, entry.sender, entry.text)
        for entry in page.lines
    ]
    if lines:
        chat.tell(member, events.Replay(room.name, lines, page.before))
    else:
        chat.tell(member, EmptyHistory(room.name))


def _names(who: Requester, a: dict[str, Any]) -> None:
    chat = who.chat
    chat.names(who.me(), chat.room(a["room"]))


def _rooms(who: Requester, a: dict[str, Any]) -> None:
    who.chat.list_rooms(who.me())


def _topic(who: Requester, a: dict[str, Any]) -> None:
    chat = who.chat
    room = chat.room_of(who.me(), a["room"])
    if "text" in a:
        chat.set_topic(who.me(), room, a["text"])
        _told(who, room)
    else:
        chat.topic(who.me(), room)


def _kick(who: Requester, a: dict[str, Any]) -> None:
    chat = who.chat
    room = chat.room_of(who.me(), a["room"])
    chat.kick(who.me(), room, a["nick"], a.get("reason", ""))
    _told(who, room)


def _status(
    change: Callable[[Chat], Callable[[Member, Room, str], None]],
) -> Handler:
    """
    A request that changes the status of C{nick} in C{room} (operator,
    voice) with the operation C{change} picks from the chat.
    """

    def handle(who: Requester, a: dict[str, Any]) -> None:
        room = who.chat.room_of(who.me(), a["room"])
        change(who.chat)(who.me(), room, a["nick"])
        _told(who, room)

    return handle


# Room moderation

# What the C{value} of a C{set} request may be, as JSON spells it.
_VALUE = "a boolean, a string, an integer or null"
_DURATION = 'a number of seconds, or text such as "10m" or "forever"'
SETTINGS: frozenset[str] = frozenset(
    [
        "invite_only",
        "key",
        "limit",
        "moderated",
        "no_external",
        "secret",
        "topic_locked",
    ]
)


def _told(who: Requester, room: Room) -> None:
    """
    Deliver what C{room} was told now, rather than at the end of the turn:
    a request's answer comes after what it did, as the protocol promises.
    """
    who.chat.fanout.flush_room(room)


def _visible(who: Requester, name: str) -> Room:
    """
    The room called C{name}, if the requester may see it: a secret room
    it is not in is no room to it.
    """
    room = who.chat.room(name)
    if not room.visible_to(who.me()):
        raise errors.NoSuchRoom(name)
    return room


def _duration(a: dict[str, Any]) -> float | None:
    """
    How long the ban or mute asked for lasts, in seconds (None: until
    taken off): a number of seconds, or text as every front end takes it.
    """
    value = a.get("duration")
    if value is None:
        return None
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadField("duration", _DURATION)
    # Compared before converting: a huge integer has no float.
    if not 0 < value <= DURATION_MAX:
        raise errors.BadDuration(str(value)[:32])
    return float(value)


def _masker(kind: MaskKind) -> Handler:
    def add(who: Requester, a: dict[str, Any]) -> None:
        chat = who.chat
        member = who.me()
        room = chat.room_of(member, a["room"])
        duration = _duration(a)
        chat.add_mask(member, room, kind, a["mask"], duration, a.get("reason", ""))
        _told(who, room)

    return add


def _unmasker(kind: MaskKind) -> Handler:
    def remove(who: Requester, a: dict[str, Any]) -> None:
        chat = who.chat
        member = who.me()
        room = chat.room_of(member, a["room"])
        chat.remove_mask(member, room, kind, a["mask"])
        _told(who, room)

    return remove


def _lister(kind: MaskKind) -> Handler:
    def masks(who: Requester, a: dict[str, Any]) -> None:
        who.chat.list_masks(who.me(), _visible(who, a["room"]), kind)

    return masks


def _invite(who: Requester, a: dict[str, Any]) -> None:
    chat = who.chat
    chat.invite(who.me(), chat.room_of(who.me(), a["room"]), a["nick"])


def _room_settings(who: Requester, a: dict[str, Any]) -> None:
    chat = who.chat
    member = who.me()
    chat.tell(member, chat.settings_of(member, _visible(who, a["room"])))


def _set(who: Requester, a: dict[str, Any]) -> None:
    chat = who.chat
    member = who.me()
    setting = a["setting"]
    value = a.get("value")
    if setting not in SETTINGS:
        raise errors.BadSetting(setting[:32], str(value)[:64])
    if value is not None and (
        type(value) not in (bool, int, str)
        or (type(value) is int and value.bit_length() > 64)
    ):
        raise BadField("value", _VALUE)
    if setting in FLAGS and type(value) is not bool:
        # Said back short, however long what came.
        raise errors.BadSetting(setting, str(value)[:64])
    room = chat.room_of(member, a["room"])
    chat.set_setting(member, room, cast(Setting, setting), value)
    _told(who, room)


def _register_room(who: Requester, a: dict[str, Any]) -> None:
    chat = who.chat
    room = chat.room_of(who.me(), a["room"])
    chat.register_room(who.me(), room)
    _told(who, room)


def _unregister_room(who: Requester, a: dict[str, Any]) -> None:
    # Its founder may, in the room or not; so may a server operator, who
    # overrules the founder.
    room = _visible(who, a["room"])
    me = who.me()
    operators = who.operators
    overrule = operators is not None and operators.is_operator(me)
    who.chat.unregister_room(me, room, overrule=overrule)
    _told(who, room)


def _accounts(who: Requester) -> Accounts:
    if who.accounts is None:
        raise errors.NoAccounts()
    return who.accounts


def _register(who: Requester, a: dict[str, Any]) -> Deferred[None]:
    return _run(_accounts(who).register(who.me(), a["password"]))


def _login(who: Requester, a: dict[str, Any]) -> Deferred[None]:
    return _run(_accounts(who).login(who.me(), a["nick"], a["password"]))


def _logout(who: Requester, a: dict[str, Any]) -> None:
    _accounts(who).logout(who.me())


def _password(who: Requester, a: dict[str, Any]) -> Deferred[None]:
    return _run(_accounts(who).change_password(who.me(), a["old"], a["new"]))


def _run(work: Coroutine[Any, Any, None]) -> Deferred[None]:
    return Deferred.fromCoroutine(work)


# Server operators

AUDIT_DEFAULT = 20


def _operators(who: Requester) -> ServerOperators:
    if who.operators is None:
        raise errors.NoPrivileges()
    return who.operators


def _oper(who: Requester, a: dict[str, Any]) -> Deferred[None] | None:
    operators = who.operators
    if operators is None:
        raise errors.NotServerOperator(a["name"])
    if operators.is_operator(who.me()):
        who.chat.tell(who.me(), events.ServerOperatorUp())
        return None
    return _run(operators.oper(who.me(), a["name"], a["password"]))


def _kill(who: Requester, a: dict[str, Any]) -> None:
    _operators(who).kill(who.me(), a["nick"], a.get("reason", ""))


def _wall(who: Requester, a: dict[str, Any]) -> None:
    _operators(who).wall(who.me(), a["text"])


def _server_ban(who: Requester, a: dict[str, Any]) -> None:
    operators = _operators(who)
    # Read as a room ban's is; an empty string (a form left blank) is none.
    duration = None if a.get("duration") == "" else _duration(a)
    operators.ban(who.me(), a["mask"], duration, a.get("reason", ""))


def _server_unban(who: Requester, a: dict[str, Any]) -> None:
    _operators(who).unban(who.me(), a["mask"])


def _server_bans(who: Requester, a: dict[str, Any]) -> None:
    _operators(who).bans(who.me())


def _audit(who: Requester, a: dict[str, Any]) -> None:
    operators = _operators(who)
    n = a.get("n", AUDIT_DEFAULT)
    if not 1 <= n <= AUDIT_MAX:
        raise BadField("n", f"an integer from 1 to {AUDIT_MAX}")
    operators.audit(who.me(), n)


def _quit(who: Requester, a: dict[str, Any]) -> None:
    who.chat.quit(who.me(), a.get("message", ""))


def _ping(who: Requester, a: dict[str, Any]) -> None:
    """Nothing: its C{ok} is the answer."""


_ROOM = Field("room")
_NICK = Field("nick")
_TEXT = Field("text")
_MASK = Field("mask")
_MASK_ADD = (
    _ROOM,
    _MASK,
    Field("duration", object, required=False),
    Field("reason", required=False),
)

REQUESTS: dict[str, Request] = {
    request.type: request
    for request in [
        Request("say", (_ROOM, _TEXT), _say),
        Request("me", (_ROOM, _TEXT), _me),
        Request("join", (_ROOM, Field("key", required=False)), _join),
        Request("part", (_ROOM, Field("reason", required=False)), _part),
        Request("nick", (_NICK,), _nick),
        Request("msg", (_NICK, _TEXT), _msg),
        Request(
            "history",
            (
                _ROOM,
                Field("n", int, required=False),
                Field("before", required=False),
            ),
            _history,
        ),
        Request("names", (_ROOM,), _names),
        Request("rooms", (), _rooms),
        Request("topic", (_ROOM, Field("text", required=False)), _topic),
        Request("kick", (_ROOM, _NICK, Field("reason", required=False)), _kick),
        Request("op", (_ROOM, _NICK), _status(lambda chat: chat.op)),
        Request("deop", (_ROOM, _NICK), _status(lambda chat: chat.deop)),
        Request("voice", (_ROOM, _NICK), _status(lambda chat: chat.voice)),
        Request("devoice", (_ROOM, _NICK), _status(lambda chat: chat.devoice)),
        Request("invite", (_ROOM, _NICK), _invite),
        Request("ban", _MASK_ADD, _masker("ban")),
        Request("unban", (_ROOM, _MASK), _unmasker("ban")),
        Request("bans", (_ROOM,), _lister("ban")),
        Request("mute", _MASK_ADD, _masker("quiet")),
        Request("unmute", (_ROOM, _MASK), _unmasker("quiet")),
        Request("mutes", (_ROOM,), _lister("quiet")),
        Request("room_settings", (_ROOM,), _room_settings),
        Request("set", (_ROOM, Field("setting"), Field("value", object)), _set),
        Request("register_room", (_ROOM,), _register_room),
        Request("unregister_room", (_ROOM,), _unregister_room),
        Request("register", (Field("password"),), _register),
        Request("login", (_NICK, Field("password")), _login),
        Request("logout", (), _logout),
        Request("password", (Field("old"), Field("new")), _password),
        Request("oper", (Field("name"), Field("password")), _oper),
        Request("kill", (_NICK, Field("reason", required=False)), _kill),
        Request("wall", (_TEXT,), _wall),
        Request(
            "server_ban",
            (
                Field("mask"),
                Field("duration", object, required=False),
                Field("reason", required=False),
            ),
            _server_ban,
        ),
        Request("server_unban", (Field("mask"),), _server_unban),
        Request("server_bans", (), _server_bans),
        Request("audit", (Field("n", int, required=False),), _audit),
        Request("quit", (Field("message", required=False),), _quit),
        Request("ping", (), _ping),
    ]
}
