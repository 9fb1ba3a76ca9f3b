"""
The web front end's renderer: every event as one JSON object, in one
WebSocket text frame.

Each object has a C{type}; its other members are the event's fields, under
the same names (C{docs/protocol.md} lists them). Room events and private
messages also carry C{time}, seconds since the epoch, when the server
delivered them. A refusal is C{{"type": "error", "code": ...}} with the
error's fields; a refusal of a request that had an C{id} carries it.

The frame, not just the JSON, is what L{JSONRenderer.render} returns: the
core renders a room's events once per flush and hands the same bytes to
every web member (see L{chatservice.frontends.web.frames}).
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

from chatservice.core import events
from chatservice.core.errors import ChatError
from chatservice.core.events import Event
from chatservice.frontends.web.frames import text_frame

# What a request's id may be: what the client sent, given back as it was.
RequestId = str | int


# The web front end's own events: the answers to requests.


@dataclass(frozen=True, slots=True)
class Answered(Event):
    """The request C{id} was carried out; its events came before this."""

    id: RequestId


@dataclass(frozen=True, slots=True)
class RefusedRequest(Event):
    """
    A request was refused for C{error}; C{id} is the request's, if it had
    one.
    """

    error: ChatError
    id: RequestId | None


@dataclass(frozen=True, slots=True)
class EmptyHistory(Event):
    """A request for the history of C{room}, which has none."""

    room: str


# Names that read better than the class's, or that the protocol fixed.
_TYPES: dict[type, str] = {
    events.Acted: "action",
    events.Noticed: "notice",
    events.RoomList: "rooms",
    events.Refused: "error",
    RefusedRequest: "error",
    Answered: "ok",
    EmptyHistory: "replay",
}

_snake = re.compile(r"(?<!^)(?=[A-Z])")


def type_name(cls: type) -> str:
    """What the C{type} of an event of class C{cls} says."""
    name = _TYPES.get(cls)
    if name is None:
        name = _TYPES[cls] = _snake.sub("_", cls.__name__).lower()
    return name


def error_object(error: ChatError, id: RequestId | None = None) -> dict[str, Any]:
    """A refusal as the protocol's C{error} object."""
    found: dict[str, Any] = {"type": "error", "code": error.code}
    if dataclasses.is_dataclass(error):
        for field in dataclasses.fields(error):
            found[field.name] = getattr(error, field.name)
    if id is not None:
        found["id"] = id
    return found


def _plain(value: Any) -> Any:
    """C{value} as something C{json} writes."""
    if isinstance(value, frozenset | set):
        return sorted(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    if isinstance(value, list | tuple):
        return [_plain(each) for each in value]
    return value


# Fields the web protocol leaves out: C{tags} are IRC clients' message tags
# in IRC's own escaped form, meaningful only to other IRC clients.
_HIDDEN = frozenset({"tags"})


def _generic(event: Event) -> dict[str, Any]:
    found: dict[str, Any] = {"type": type_name(type(event))}
    if dataclasses.is_dataclass(event):
        for field in dataclasses.fields(event):
            if field.name not in _HIDDEN:
                found[field.name] = _plain(getattr(event, field.name))
    return found


def _room_list(event: events.RoomList) -> dict[str, Any]:
    return {
        "type": "rooms",
        "rooms": [{"room": name, "count": count} for name, count in event.rooms],
    }


def _empty_history(event: EmptyHistory) -> dict[str, Any]:
    return {"type": "replay", "room": event.room, "lines": [], "before": None}


_SPECIAL: dict[type, Callable[[Any], dict[str, Any]]] = {
    events.Refused: lambda event: error_object(event.error),
    RefusedRequest: lambda event: error_object(event.error, event.id),
    events.RoomList: _room_list,
    EmptyHistory: _empty_history,
}

# Events told with the time they were delivered.
_TIMED = (events.RoomEvent, events.Private)

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode(value: dict[str, Any]) -> bytes:
    """
    C{value} as compact JSON in UTF-8. A lone surrogate (which no valid
    input holds, but a JSON escape can) becomes C{?} rather than an error
    in the middle of a fan-out.
    """
    return _dumps(value).encode("utf-8", "replace")


# The lines people say, act and notice, most of what a room carries: their
# objects are written by formatting, each string quoted as json quotes it
# (C{encode_basestring} is what C{_dumps} uses, in C), without building a
# dict for json to walk. The bytes are those of L{encode} of L{object}.
_LINES: dict[type, str] = {
    cls: '{"type":"' + type_name(cls) + '","room":%s,"nick":%s,"text":%s,"time":%s}'
    for cls in (events.Said, events.Acted, events.Noticed)
}


class JSONRenderer:
    """
    Events as JSON text frames, for every web session alike.

    @param clock: the wall clock that dates room events and private
        messages, in seconds since the epoch.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        # The last time written, and how json writes it: the lines of one
        # flush are mostly of the same millisecond.
        self._stamp: float = -1.0
        self._stamp_text = "-1.0"

    def object(self, event: Event) -> dict[str, Any]:
        """C{event} as the protocol's JSON object."""
        cls = type(event)
        if cls is events.Said:
            # Most events are lines said: built without the look-ups.
            said: events.Said = event  # type: ignore[assignment]
            return {
                "type": "said",
                "room": said.room,
                "nick": said.nick,
                "text": said.text,
                "time": round(self.clock(), 3),
            }
        special = _SPECIAL.get(cls)
        found = _generic(event) if special is None else special(event)
        if isinstance(event, _TIMED):
            found["time"] = round(self.clock(), 3)
        return found

    def render(self, event: Event) -> bytes:
        line = _LINES.get(type(event))
        if line is not None:
            said: events.Said = event  # type: ignore[assignment]
            stamp = round(self.clock(), 3)
            if stamp != self._stamp or type(stamp) is not type(self._stamp):
                self._stamp = stamp
                # What json writes for a finite float (or an int).
                self._stamp_text = repr(stamp)
            text = line % (
                encode_basestring(said.room),
                encode_basestring(said.nick),
                encode_basestring(said.text),
                self._stamp_text,
            )
            return text_frame(text.encode("utf-8", "replace"))
        return text_frame(encode(self.object(event)))

    def render_to(self, nick: str, event: Event) -> bytes:
        # Nothing in this protocol names the recipient.
        return self.render(event)
