"""
The wire format of the cluster log: events and errors as JSON values, and
a batch of entries as bytes.

Every node decodes what every other node wrote, so what comes in is input
from the network: anything malformed (an unknown type, a missing, extra or
mistyped field, bytes that are not UTF-8 or not JSON, a batch too big or
too deep) raises L{CodecError} and nothing else. There is no pickle and no
C{eval}: a value can only become one of the records registered here, built
from its declared fields.

The format follows the declarations, so a field added to an event needs
nothing here. At import, every concrete event of L{chatservice.core.events}
and every error of L{chatservice.core.errors} is registered by class name,
and each field's type hint becomes a pair of functions, one to write it
and one to read it back checked (a type it does not know fails the
import, not a later batch):

  - an event is a JSON list, its class name first. The lines people say
    (L{events.Said}, L{events.Acted}, L{events.Noticed}), most of the log,
    are positional: C{["Said", room, nick, text, tags]}, about half the
    cost of the others' C{["Joined", {"room": ..., "nick": ...}]}, whose
    named fields survive a field being reordered or added with a default.
    In a room's entry of the log they are shorter still (L{encode_room}):
    the room is the entry's, and a sender's consecutive lines of one kind
    are one item, C{["S", nick, [text, ...]]}.
  - an error is C{["NickTaken", {"nick": ...}]}: its class and its fields,
    which are its constructor's arguments.
  - a record inside an event (a L{events.Ban}, a L{events.HistoryLine})
    is an object of its fields: its type is the declared one.
  - a C{frozenset} is a sorted list; a C{tuple[...]} a list; a
    C{Sequence} a list if it was a list and C{{"tuple": [...]}} if it was
    a tuple, since frozen dataclasses compare the two as different.
  - a float is a JSON number (finite: JSON has no others); a C{Literal}
    is its value, checked against the allowed ones.

Front ends' own events (IRC's C{TagMsg}, the line front end's C{Notice})
and errors are not carried: they never leave the connection that made
them, and this module must not import front ends.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, fields, is_dataclass
from functools import partial
from operator import attrgetter
from typing import Any, Final, Literal, Union

from chatservice.core import audit, errors, events, server_bans

# The most bytes one batch may have, written or read: a node never
# publishes what the others would refuse.
MAX_BATCH: Final = 16 * 1024 * 1024


class CodecError(ValueError):
    """A value that is not, or cannot be, an entry of the cluster log."""


_Encode = Callable[[Any], object]
_Decode = Callable[[object], Any]


class _Field:
    """How one field of a record is written and read back."""

    __slots__ = ("decode", "default", "encode", "name")

    def __init__(
        self, name: str, encode: _Encode, decode: _Decode, default: Callable[[], object]
    ) -> None:
        self.name = name
        self.encode = encode
        self.decode = decode
        # What the field is when a value leaves it out.
        self.default = default


def _required() -> object:
    raise AssertionError("a required field has no default")


class _Record:
    """
    How one dataclass is written: its fields, as an object (C{named}) or
    in declaration order after the class name (not C{named}).
    """

    __slots__ = ("cls", "fields", "get", "least", "name", "named", "plain")

    def __init__(self, cls: type, hints: dict[str, Any], named: bool) -> None:
        self.cls = cls
        self.name = cls.__name__
        self.named = named
        self.fields: list[_Field] = []
        for field in fields(cls):
            encode, decode = _codec(hints[field.name])
            default: Callable[[], object] = _required
            if field.default is not MISSING:
                default = partial(_same, field.default)
            elif field.default_factory is not MISSING:
                default = field.default_factory
            self.fields.append(_Field(field.name, encode, decode, default))
        self.least = sum(f.default is _required for f in self.fields)
        names = [f.name for f in self.fields]
        # All the values at once, as a tuple, in one call.
        self.get: Callable[[object], tuple[object, ...]] = (
            attrgetter(*names) if len(names) > 1 else partial(_values, names)
        )
        # Said and its kind: strings only, checked without a call each.
        self.plain = all(hints[name] is str for name in names)

    def encode_object(self, value: object) -> dict[str, object]:
        return {f.name: f.encode(getattr(value, f.name)) for f in self.fields}

    def encode_list(self, value: object) -> list[object]:
        values = self.get(value)
        if self.plain:
            for item in values:
                if type(item) is not str:
                    raise CodecError(f"{self.name}: {_shown(item)} is not a string")
            return [self.name, *values]
        return [
            self.name,
            *[f.encode(item) for f, item in zip(self.fields, values, strict=True)],
        ]

    def decode_object(self, value: object) -> Any:
        if type(value) is not dict:
            raise CodecError(f"{self.name}: fields are not an object")
        args = []
        found = 0
        for f in self.fields:
            if f.name in value:
                found += 1
                try:
                    args.append(f.decode(value[f.name]))
                except CodecError as e:
                    raise CodecError(f"{self.name}.{f.name}: {e}") from None
            elif f.default is _required:
                raise CodecError(f"{self.name}: missing field {f.name!r}")
            else:
                args.append(f.default())
        if found != len(value):
            known = {f.name for f in self.fields}
            extra = ", ".join(_shown(key) for key in list(set(value) - known)[:3])
            raise CodecError(f"{self.name}: unknown fields {extra}")
        return self._build(args)

    def decode_list(self, value: list[object]) -> Any:
        given = len(value) - 1
        if not self.least <= given <= len(self.fields):
            raise CodecError(
                f"{self.name}: {given} fields, not {self.least} to {len(self.fields)}"
            )
        args = value[1:]
        if self.plain:
            for item in args:
                if type(item) is not str or not (item.isascii() or _unicode(item)):
                    raise CodecError(f"{self.name}: {_shown(item)} is not a string")
        else:
            args = [f.decode(item) for f, item in zip(self.fields, args, strict=False)]
        if given < len(self.fields):
            args.extend(f.default() for f in self.fields[given:])
        return self._build(args)

    def _build(self, args: list[Any]) -> Any:
        try:
            return self.cls(*args)
        except (TypeError, ValueError) as e:
            raise CodecError(f"{self.name}: {e}") from None


def _shown(value: object) -> str:
    """
    C{value}, short, for an error message: never the whole of what may be
    megabytes of JSON nested a thousand deep.
    """
    if isinstance(value, str):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    if isinstance(value, int) and abs(value) >= 10**40:
        return "a big integer"
    if isinstance(value, (int, float)) or value is None:
        return repr(value)
    return f"a {type(value).__name__}"


def _same(value: object) -> object:
    return value


def _values(names: list[str], value: object) -> tuple[object, ...]:
    return tuple(getattr(value, name) for name in names)


# Reading and writing one value of a declared type.


def _unicode(text: str) -> bool:
    """
    Whether C{text} has no lone surrogate: a JSON escape can make one,
    which no UTF-8 can, and which would fail whoever encodes it next.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _decode_str(value: object) -> str:
    if type(value) is not str or not (value.isascii() or _unicode(value)):
        raise CodecError(f"{_shown(value)} is not a string")
    return value


def _encode_str(value: object) -> str:
    if type(value) is not str:
        raise CodecError(f"{_shown(value)} is not a string")
    return value


def _exact(kind: type, what: str) -> tuple[_Encode, _Decode]:
    """Values of exactly C{kind} (so no bool is taken for an int)."""

    def check(value: object) -> object:
        if type(value) is not kind:
            raise CodecError(f"{_shown(value)} is not {what}")
        return value

    return check, check


def _encode_float(value: object) -> float:
    if type(value) is not float and type(value) is not int:
        raise CodecError(f"{_shown(value)} is not a number")
    if not math.isfinite(value):
        raise CodecError(f"{value!r} is not a finite number")
    return value


def _decode_float(value: object) -> float:
    if type(value) is not float and type(value) is not int:
        raise CodecError(f"{_shown(value)} is not a number")
    if not math.isfinite(value):
        raise CodecError(f"{value!r} is not a finite number")
    return float(value)


def _literal(allowed: tuple[object, ...]) -> tuple[_Encode, _Decode]:
    pairs = frozenset((type(v), v) for v in allowed)

    def check(value: object) -> object:
        try:
            ok = (type(value), value) in pairs
        except TypeError:  # unhashable
            ok = False
        if not ok:
            raise CodecError(
                f"{_shown(value)} is not one of {sorted(map(str, allowed))}"
            )
        return value

    return check, check


def _union(members: list[tuple[_Encode, _Decode]]) -> tuple[_Encode, _Decode]:
    def either(which: int) -> Callable[[object], object]:
        def attempt(value: object) -> object:
            for codec in members:
                try:
                    return codec[which](value)
                except CodecError:
                    pass
            raise CodecError(f"{_shown(value)} is none of the types allowed")

        return attempt

    return either(0), either(1)


def _sequence(
    item: tuple[_Encode, _Decode], kind: type | None
) -> tuple[_Encode, _Decode]:
    """
    A C{list[X]} or C{tuple[X, ...]} (C{kind}), or a C{Sequence[X]} (None),
    which keeps whether it was a list or a tuple.
    """
    encode_item, decode_item = item

    def encode(value: object) -> object:
        if type(value) is list or type(value) is tuple:
            items = [encode_item(v) for v in value]
            if kind is None and type(value) is tuple:
                return {"tuple": items}
            if kind is None or type(value) is kind:
                return items
        raise CodecError(f"{_shown(value)} is not a {(kind or Sequence).__name__}")

    def decode(value: object) -> object:
        as_tuple = kind is tuple
        if kind is None and type(value) is dict and value.keys() == {"tuple"}:
            value = value["tuple"]
            as_tuple = True
        if type(value) is not list:
            raise CodecError(f"{_shown(value)} is not a list")
        items = [decode_item(v) for v in value]
        return tuple(items) if as_tuple else items

    return encode, decode


def _tuple(items: list[tuple[_Encode, _Decode]]) -> tuple[_Encode, _Decode]:
    """A C{tuple[X, Y, ...]} of fixed length: a list of that length."""

    def encode(value: object) -> object:
        if type(value) is not tuple or len(value) != len(items):
            raise CodecError(f"{_shown(value)} is not a tuple of {len(items)}")
        return [codec[0](v) for codec, v in zip(items, value, strict=True)]

    def decode(value: object) -> object:
        if type(value) is not list or len(value) != len(items):
            raise CodecError(f"{_shown(value)} is not a list of {len(items)}")
        return tuple(codec[1](v) for codec, v in zip(items, value, strict=True))

    return encode, decode


def _frozenset(item: tuple[_Encode, _Decode]) -> tuple[_Encode, _Decode]:
    encode_item, decode_item = item

    def encode(value: object) -> object:
        if type(value) is not frozenset:
            raise CodecError(f"{_shown(value)} is not a frozenset")
        items = [encode_item(v) for v in value]
        try:
            # The same set, the same bytes.
            items.sort()
        except TypeError:
            pass
        return items

    def decode(value: object) -> object:
        if type(value) is not list:
            raise CodecError(f"{_shown(value)} is not a list")
        try:
            return frozenset([decode_item(v) for v in value])
        except TypeError:  # unhashable
            raise CodecError(f"{_shown(value)} is not a set") from None

    return encode, decode


def _nested(cls: type) -> tuple[_Encode, _Decode]:
    """A record inside an event: its fields, its type the declared one."""
    record = _Record(cls, _hints(cls), named=True)

    def encode(value: object) -> object:
        if type(value) is not cls:
            raise CodecError(f"{_shown(value)} is not a {cls.__name__}")
        return record.encode_object(value)

    return encode, record.decode_object


def _error_field(cls: type) -> tuple[_Encode, _Decode]:
    def encode(value: Any) -> object:
        return encode_error(value)

    def decode(value: object) -> object:
        error = decode_error(value)
        if not isinstance(error, cls):
            raise CodecError(f"{type(error).__name__} is not a {cls.__name__}")
        return error

    return encode, decode


def _codec(hint: Any) -> tuple[_Encode, _Decode]:
    """The writer and the reader of a value declared as C{hint}."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is str:
        return _encode_str, _decode_str
    if hint is bool:
        return _exact(bool, "true or false")
    if hint is int:
        return _exact(int, "an integer")
    if hint is float:
        return _encode_float, _decode_float
    if hint is type(None):
        return _exact(type(None), "null")
    if origin is Literal:
        return _literal(args)
    if origin is Union or origin is types.UnionType:
        return _union([_codec(arg) for arg in args])
    if origin is frozenset:
        return _frozenset(_codec(args[0]))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _sequence(_codec(args[0]), tuple)
        return _tuple([_codec(arg) for arg in args])
    if origin is list:
        return _sequence(_codec(args[0]), list)
    if origin is Sequence:
        return _sequence(_codec(args[0]), None)
    if isinstance(hint, type) and issubclass(hint, errors.ChatError):
        return _error_field(hint)
    if isinstance(hint, type) and is_dataclass(hint):
        return _nested(hint)
    raise TypeError(f"the cluster codec cannot carry values of type {hint!r}")


# Names that events.py imports only for type checking.
_NAMES = {
    "AuditEntry": audit.AuditEntry,
    "ChatError": errors.ChatError,
    "ServerBan": server_bans.ServerBan,
}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, localns=_NAMES)


# The registries, by class name.

# The lines people say: positional, and in a room's entry of the log
# shorter still (the room is the entry's, and one sender's consecutive
# lines of one kind share one item), under a letter each.
_Spoken = type[events.Said] | type[events.Acted] | type[events.Noticed]
_SPOKEN_KIND: Final[dict[_Spoken, str]] = {
    events.Said: "S",
    events.Acted: "A",
    events.Noticed: "N",
}
_SPOKEN_CLASS: Final = {kind: cls for cls, kind in _SPOKEN_KIND.items()}


def _registered(module: types.ModuleType, base: type) -> list[type]:
    """The concrete (dataclass) subclasses of C{base} that C{module} defines."""
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, base)
        and value.__module__ == module.__name__
        and is_dataclass(value)
    ]


_EVENTS: Final = {
    cls.__name__: _Record(cls, _hints(cls), named=cls not in _SPOKEN_KIND)
    for cls in _registered(events, events.Event)
}
_EVENT_BY_CLASS: Final = {record.cls: record for record in _EVENTS.values()}
_ERRORS: Final = {
    cls.__name__: _Record(cls, _hints(cls), named=True)
    for cls in _registered(errors, errors.ChatError)
}
_ERROR_BY_CLASS: Final = {record.cls: record for record in _ERRORS.values()}

EVENT_TYPES: Final = frozenset(_EVENT_BY_CLASS)
"""Every event class the codec carries."""
ERROR_TYPES: Final = frozenset(_ERROR_BY_CLASS)
"""Every error class the codec carries."""


def _encode(value: object, by_class: dict[type, _Record], what: str) -> object:
    record = by_class.get(type(value))
    if record is None:
        raise CodecError(f"{type(value).__name__} is not {what} the cluster carries")
    if record.named:
        return [record.name, record.encode_object(value)]
    return record.encode_list(value)


def _decode(value: object, by_name: dict[str, _Record], what: str) -> Any:
    if type(value) is not list or not value:
        raise CodecError(f"{what} is not a non-empty list")
    name = value[0]
    record = by_name.get(name) if type(name) is str else None
    if record is None:
        raise CodecError(f"unknown {what} type {_shown(name)}")
    if not record.named:
        return record.decode_list(value)
    if len(value) != 2:
        raise CodecError(f"{name}: not a type and an object")
    return record.decode_object(value[1])


def encode_event(event: events.Event) -> object:
    """C{event} as a JSON value: see the module docstring."""
    return _encode(event, _EVENT_BY_CLASS, "an event")


def decode_event(value: object) -> events.Event:
    """
    The event C{value} is (as L{encode_event} wrote it).

    @raise CodecError: if it is not one.
    """
    event: events.Event = _decode(value, _EVENTS, "event")
    return event


# A room's entry of the log: its items, each a session id (or None), an
# event, and for a join whether the joiner is an operator.
RoomItem = tuple[Any, ...]


def encode_room(items: Sequence[RoomItem]) -> list[list[object]]:
    """
    A room's items as the log carries them. The lines people say, most of
    the log, are short, and a sender's consecutive lines of one kind are
    one item: C{[sid, ["S", nick, [text, ...]]]} (C{"A"} for actions,
    C{"N"} for notices), the room left to the entry; a line with tags is
    C{[sid, ["S", nick, text, tags]]}; any other event is C{[sid, event]}
    as L{encode_event} writes it, and a join C{[sid, event, operator]}.

    @raise CodecError: if an event is not one the log carries.
    """
    wire: list[list[object]] = []
    append = wire.append
    spoken = _SPOKEN_KIND
    texts: list[str] | None = None
    run: tuple[object, str, str] | None = None
    for item in items:
        event: Any = item[1]
        kind = spoken.get(type(event))
        if kind is None or len(item) != 2:
            texts = None
            append([item[0], encode_event(event), *item[2:]])
            continue
        nick = event.nick
        text = event.text
        if type(nick) is not str or type(text) is not str:
            raise CodecError(f"{type(event).__name__}: a field is not a string")
        if event.tags:
            texts = None
            append([item[0], [kind, nick, text, _decode_str(event.tags)]])
            continue
        key = (item[0], kind, nick)
        if texts is not None and key == run:
            texts.append(text)
            continue
        run = key
        texts = [text]
        append([item[0], [kind, nick, texts]])
    return wire


@dataclass(frozen=True, slots=True)
class Run:
    """
    One sender's consecutive lines of one kind in a room, as a room's entry
    carries them: a node that applies them makes their events and records
    a run at a time, not a line at a time.
    """

    sid: str | None
    kind: _Spoken
    room: str
    nick: str
    texts: list[str]

    def events(self) -> list[events.Event]:
        """The lines, as the events they are."""
        make = partial(self.kind, self.room, self.nick)
        return [make(text) for text in self.texts]


def decode_room(room: str, wire: object) -> list[RoomItem | Run]:
    """
    The items of C{room}'s entry, as L{encode_room} wrote them: a sender's
    lines without tags as one L{Run}, anything else an item a line.

    @raise CodecError: if they are not.
    """
    _decode_str(room)
    if type(wire) is not list:
        raise CodecError("a room's items are not a list")
    items: list[RoomItem | Run] = []
    append = items.append
    for item in wire:
        if type(item) is not list or not 2 <= len(item) <= 3:
            raise CodecError("a room's item is not a list of two or three")
        sid = item[0]
        if sid is not None and type(sid) is not str:
            raise CodecError(f"{_shown(sid)} is not a session")
        value = item[1]
        cls = None
        if type(value) is list and 3 <= len(value) <= 4 and len(item) == 2:
            kind = value[0]
            cls = _SPOKEN_CLASS.get(kind) if type(kind) is str else None
        if cls is None:
            append((sid, decode_event(value), *item[2:]))
            continue
        name = cls.__name__
        nick = _decode_str(value[1])
        texts = value[2]
        if len(value) == 4:
            append((sid, cls(room, nick, _decode_str(texts), _decode_str(value[3]))))
            continue
        if type(texts) is not list:
            raise CodecError(f"{name}: {_shown(texts)} is not a list of lines")
        try:
            # All the lines checked at once.
            _decode_str("".join(texts))
        except TypeError:
            raise CodecError(f"{name}: a line that is not a string") from None
        append(Run(sid, cls, room, nick, texts))
    return items


def encode_error(error: errors.ChatError) -> object:
    """C{error} as a JSON value: its class name and fields."""
    return _encode(error, _ERROR_BY_CLASS, "an error")


def decode_error(value: object) -> errors.ChatError:
    """
    The error C{value} is (as L{encode_error} wrote it).

    @raise CodecError: if it is not one.
    """
    error: errors.ChatError = _decode(value, _ERRORS, "error")
    return error


# A batch.

_dump = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
).encode


def _no_constant(name: str) -> object:
    raise CodecError(f"{name} is not a JSON number")


_load = json.JSONDecoder(parse_constant=_no_constant).decode


def dumps(entries: list[object]) -> bytes:
    """
    One batch of entries as compact JSON in UTF-8. A lone surrogate in a
    string (which nothing decoded from UTF-8 holds) becomes C{?} rather
    than failing the batch.

    @raise CodecError: if C{entries} is not JSON, or more than
        L{MAX_BATCH} bytes.
    """
    if type(entries) is not list:
        raise CodecError("a batch is a list")
    try:
        data = _dump(entries).encode("utf-8", "replace")
    except (TypeError, ValueError, RecursionError) as e:
        raise CodecError(f"not JSON: {e}") from None
    if len(data) > MAX_BATCH:
        raise CodecError(f"a batch of {len(data)} bytes, more than {MAX_BATCH}")
    return data


def loads(data: bytes) -> list[object]:
    """
    The entries of one batch, as L{dumps} wrote them (each still to be
    decoded).

    @raise CodecError: if C{data} is not a JSON list in UTF-8 of at most
        L{MAX_BATCH} bytes.
    """
    if not isinstance(data, bytes):
        raise CodecError("a batch is bytes")
    if len(data) > MAX_BATCH:
        raise CodecError(f"a batch of {len(data)} bytes, more than {MAX_BATCH}")
    try:
        entries = _load(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise CodecError("a batch that is not UTF-8") from None
    except RecursionError:
        raise CodecError("a batch nested too deep") from None
    except ValueError as e:  # JSONDecodeError, or an integer too long
        raise CodecError(f"a batch that is not JSON: {e}") from None
    if type(entries) is not list:
        raise CodecError("a batch is a list")
    return entries
