"""
The cluster log's codec: every event and every error of the core comes back
as it went, and nothing another node could send makes it fail other than
with L{CodecError}.

The events and errors are enumerated, not listed: a new one the codec
cannot carry fails here. Samples are built from the field declarations,
one per choice a field's type allows (a union's members, a list or a
tuple, None or not), so nested records are covered with each of theirs.
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
import typing
from collections.abc import Iterator, Sequence
from dataclasses import fields, is_dataclass, replace
from types import ModuleType, UnionType
from typing import Any, Literal, Union

from twisted.trial.unittest import SynchronousTestCase

import chatservice.cluster
import chatservice.core
import chatservice.frontends
import chatservice.server
import chatservice.storage
from chatservice.cluster import codec
from chatservice.cluster.codec import CodecError
from chatservice.core import audit, errors, events, server_bans

# Events and errors a front end defines for its own connections: never in
# the cluster log (the codec may not import front ends). A new one must be
# placed here, or made a core event the codec carries.
FRONT_END_ONLY = {
    "chatservice.frontends.irc.renderer": {
        "Echo",
        "NamesReply",
        "Raw",
        "Reply",
        "TagMsg",
        "IRCError",
    },
    "chatservice.frontends.line.wire": {
        "EmptyHistory",
        "Notice",
        "PartedSelf",
        "StatusUnchanged",
        "Switched",
        "NoSuchCommand",
        "UnknownCommand",
        "Usage",
    },
    "chatservice.frontends.web.renderer": {
        "Answered",
        "EmptyHistory",
        "RefusedRequest",
    },
    "chatservice.frontends.web.requests": {
        "BadField",
        "BinaryMessage",
        "InvalidJSON",
        "UnknownType",
    },
}


@functools.cache
def _import_everything() -> None:
    """Import every module that may define an event or an error."""
    for package in (
        chatservice.core,
        chatservice.frontends,
        chatservice.server,
        chatservice.storage,
        chatservice.cluster,
    ):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)


def _subclasses(base: type) -> Iterator[type]:
    sub: type
    for sub in base.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def concrete(base: type, module: ModuleType) -> list[type]:
    """
    The concrete (dataclass) subclasses of C{base} in the project, checking
    that those outside C{module} are known front-end ones.
    """
    _import_everything()
    found = []
    for cls in set(_subclasses(base)):
        if not is_dataclass(cls) or not cls.__module__.startswith("chatservice."):
            continue
        # A slotted dataclass is a copy of the class its body made, which
        # lingers among the subclasses: only the one its module holds counts.
        if (
            getattr(importlib.import_module(cls.__module__), cls.__name__, None)
            is not cls
        ):
            continue
        if cls.__module__ == module.__name__:
            found.append(cls)
        elif cls.__name__ not in FRONT_END_ONLY.get(cls.__module__, ()):
            raise AssertionError(
                f"{cls.__module__}.{cls.__name__} is neither in {module.__name__}"
                " (carried by the cluster codec) nor in FRONT_END_ONLY"
            )
    return sorted(found, key=lambda cls: cls.__name__)


_NAMES = {
    "AuditEntry": audit.AuditEntry,
    "ChatError": errors.ChatError,
    "ServerBan": server_bans.ServerBan,
}


def error_sample(cls: type[errors.ChatError]) -> errors.ChatError:
    """One instance of the error C{cls}, its fields given positionally."""
    hints = typing.get_type_hints(cls, localns=_NAMES)
    return cls(*[samples(hints[f.name])[0] for f in fields(cls)])  # type: ignore[arg-type]


def samples(hint: Any) -> list[Any]:
    """Values of the type C{hint}: one for each shape it allows."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is str:
        return ["bob", "", 'caf\u00e9 \u2603 \U0001f600 "q" \\ \n']
    if hint is bool:
        return [True, False]
    if hint is int:
        return [7, 0, -(2**40)]
    if hint is float:
        return [1700000000.25, 0.0, -1e-9]
    if hint is type(None):
        return [None]
    if origin is Literal:
        return list(args)
    if origin is Union or origin is UnionType:
        return [value for arg in args for value in samples(arg)]
    if origin is frozenset:
        return [frozenset(samples(args[0])), frozenset()]
    if origin is Sequence:
        items = samples(args[0])
        return [items, tuple(items[:1]), []]
    if origin is tuple:
        return [tuple(samples(arg)[0] for arg in args)]
    if isinstance(hint, type) and issubclass(hint, errors.ChatError):
        return [error_sample(cls) for cls in concrete(errors.ChatError, errors)]
    if isinstance(hint, type) and is_dataclass(hint):
        return list(instances(hint))
    raise AssertionError(f"no samples of {hint!r}")


def instances(cls: type) -> Iterator[Any]:
    """
    Instances of the dataclass C{cls}: its first sample of every field,
    then each other sample of each field in turn.
    """
    hints = typing.get_type_hints(cls, localns=_NAMES)
    choices = {f.name: samples(hints[f.name]) for f in fields(cls)}
    base = cls(**{name: values[0] for name, values in choices.items()})
    yield base
    for name, values in choices.items():
        for value in values[1:]:
            yield replace(base, **{name: value})


def same(test: SynchronousTestCase, got: object, expected: object) -> None:
    """
    C{got} is C{expected}, down to every type: an error (compared by
    identity) by its class, fields, arguments and what it renders.
    """
    test.assertIs(type(got), type(expected))
    if isinstance(expected, errors.ChatError):
        assert isinstance(got, errors.ChatError)
        test.assertEqual(vars(got).keys(), vars(expected).keys())
        for name in vars(expected):
            same(test, getattr(got, name), getattr(expected, name))
        test.assertEqual(got.args, expected.args)
        test.assertEqual(str(got), str(expected))
        test.assertEqual(got.code, expected.code)
    elif is_dataclass(expected):
        for f in fields(expected):
            same(test, getattr(got, f.name), getattr(expected, f.name))
    elif isinstance(expected, (list, tuple)):
        assert isinstance(got, (list, tuple))
        test.assertEqual(len(got), len(expected))
        for a, b in zip(got, expected, strict=True):
            same(test, a, b)
    else:
        test.assertEqual(got, expected)


def _contains_error(value: object) -> bool:
    if isinstance(value, errors.ChatError):
        return True
    if is_dataclass(value):
        return any(_contains_error(getattr(value, f.name)) for f in fields(value))
    return False


def through_the_wire(value: object) -> object:
    """C{value}, as another node reads it from a batch of its own."""
    [back] = codec.loads(codec.dumps([value]))
    return back


class RoundTripTests(SynchronousTestCase):
    def test_every_event(self) -> None:
        """
        Every concrete event of the core, in every shape its fields allow,
        decodes equal to itself, down to the types of what it holds.
        """
        classes = concrete(events.Event, events)
        self.assertEqual(set(classes), codec.EVENT_TYPES)
        count = 0
        for cls in classes:
            for event in instances(cls):
                decoded = codec.decode_event(
                    through_the_wire(codec.encode_event(event))
                )
                same(self, decoded, event)
                if not _contains_error(event):
                    self.assertEqual(decoded, event)
                count += 1
        self.assertGreater(count, 2 * len(classes))

    def test_every_error(self) -> None:
        """
        Every error of the core decodes to an error of its class with the
        same fields, arguments, text and code.
        """
        classes = concrete(errors.ChatError, errors)
        self.assertEqual(set(classes), codec.ERROR_TYPES)
        for cls in classes:
            error = error_sample(cls)
            decoded = codec.decode_error(through_the_wire(codec.encode_error(error)))
            same(self, decoded, error)

    def test_refused_carries_every_error(self) -> None:
        for cls in codec.ERROR_TYPES:
            event = events.Refused(error_sample(cls))
            same(self, codec.decode_event(codec.encode_event(event)), event)

    def test_keyword_error(self) -> None:
        """
        An error made with keywords has no C{args}; it comes back with its
        fields as C{args}, and the same fields.
        """
        error = errors.CannotSpeak(room="#a", why="muted")
        decoded = codec.decode_error(codec.encode_error(error))
        self.assertIsInstance(decoded, errors.CannotSpeak)
        self.assertEqual(vars(decoded), vars(error))
        self.assertEqual(decoded.args, ("#a", "muted"))

    def test_sequence_kind_kept(self) -> None:
        """
        A C{Sequence} field comes back a list if it was one and a tuple if
        it was one: frozen dataclasses compare them as different.
        """
        for lines in (["a", "b"], ("a", "b")):
            decoded = codec.decode_event(codec.encode_event(events.Motd(lines)))
            assert isinstance(decoded, events.Motd)
            self.assertIs(type(decoded.lines), type(lines))
            self.assertEqual(decoded, events.Motd(lines))

    def test_int_in_float_field(self) -> None:
        """A whole number where a float is declared comes back a float."""
        decoded = codec.decode_event(
            codec.encode_event(events.Topic("#a", "t", "b", 5))
        )
        assert isinstance(decoded, events.Topic)
        self.assertIs(type(decoded.time), float)
        self.assertEqual(decoded, events.Topic("#a", "t", "b", 5.0))


class WireFormTests(SynchronousTestCase):
    """
    The bytes on the wire, pinned: every node of a cluster must read what
    the others write, so a change here is a change of format.
    """

    def test_said(self) -> None:
        """The lines people say are positional, their class name first."""
        for cls in (events.Said, events.Acted, events.Noticed):
            event = cls("#a", "bob", "hi", "+x=1")
            self.assertEqual(
                codec.dumps([codec.encode_event(event)]),
                b'[["' + cls.__name__.encode() + b'","#a","bob","hi","+x=1"]]',
            )

    def test_said_without_tags(self) -> None:
        """A missing trailing field with a default takes it."""
        self.assertEqual(
            codec.decode_event(["Said", "#a", "bob", "hi"]),
            events.Said("#a", "bob", "hi"),
        )

    def test_named(self) -> None:
        """Other events are their class name and an object of their fields."""
        self.assertEqual(
            codec.dumps([codec.encode_event(events.Joined("#a", "bob"))]),
            b'[["Joined",{"room":"#a","nick":"bob"}]]',
        )

    def test_nested(self) -> None:
        event = events.MaskAdded(
            "#a", "op", "ban", events.Ban("*!*@h", "op", 1.5, None, "")
        )
        self.assertEqual(
            json.loads(codec.dumps([codec.encode_event(event)])),
            [
                [
                    "MaskAdded",
                    {
                        "room": "#a",
                        "nick": "op",
                        "kind": "ban",
                        "entry": {
                            "mask": "*!*@h",
                            "by": "op",
                            "at": 1.5,
                            "expires": None,
                            "reason": "",
                        },
                    },
                ]
            ],
        )

    def test_collections(self) -> None:
        """
        A frozenset is a sorted list, a tuple in a C{Sequence} is marked as
        one, a fixed tuple is a list.
        """
        self.assertEqual(
            codec.encode_event(
                events.Names("#a", ("b", "a"), frozenset({"b", "a"}), frozenset())
            ),
            [
                "Names",
                {
                    "room": "#a",
                    "nicks": {"tuple": ["b", "a"]},
                    "operators": ["a", "b"],
                    "voiced": [],
                    "secret": False,
                },
            ],
        )
        self.assertEqual(
            codec.encode_event(events.RoomList([("#a", 2)])),
            ["RoomList", {"rooms": [["#a", 2]]}],
        )

    def test_refused(self) -> None:
        self.assertEqual(
            codec.encode_event(events.Refused(errors.NickTaken("bob"))),
            ["Refused", {"error": ["NickTaken", {"nick": "bob"}]}],
        )

    def test_empty_event(self) -> None:
        self.assertEqual(codec.encode_event(events.Goodbye()), ["Goodbye", {}])
        self.assertEqual(codec.decode_event(["Goodbye", {}]), events.Goodbye())

    def test_non_ascii(self) -> None:
        """Text is written as UTF-8, not escaped."""
        data = codec.dumps([codec.encode_event(events.Said("#a", "b", "caf\u00e9"))])
        self.assertIn("caf\u00e9".encode(), data)


# Entries another node could send that are not entries.
MALFORMED_EVENTS: list[tuple[str, object]] = [
    ("not a list", {"type": "Said"}),
    ("a string", "Said"),
    ("null", None),
    ("empty", []),
    ("unknown type", ["Nope", {}]),
    ("type not a string", [1, {}]),
    ("type unhashable", [["Said"], "#a", "b", "c"]),
    ("error for event", ["NickTaken", {"nick": "bob"}]),
    (
        "record for event",
        ["Ban", {"mask": "m", "by": "b", "at": 1, "expires": None, "reason": ""}],
    ),
    ("base class", ["Event", {}]),
    ("room base class", ["RoomEvent", {}]),
    ("missing field", ["Joined", {"room": "#a"}]),
    ("extra field", ["Joined", {"room": "#a", "nick": "b", "by": "c"}]),
    ("wrong type", ["Joined", {"room": 5, "nick": "b"}]),
    ("fields not an object", ["Joined", ["#a", "b"]]),
    ("too many parts", ["Joined", {"room": "#a", "nick": "b"}, {}]),
    ("fields missing", ["Joined"]),
    ("bool for int", ["Entered", {"room": "#a", "count": True}]),
    ("float for int", ["Entered", {"room": "#a", "count": 1.0}]),
    ("int for bool", ["OperatorUnchanged", {"room": "#a", "nick": "b", "operator": 1}]),
    (
        "string for float",
        ["Topic", {"room": "#a", "text": "t", "nick": "n", "time": "1"}],
    ),
    (
        "infinite float",
        ["Topic", {"room": "#a", "text": "t", "nick": "n", "time": float("inf")}],
    ),
    (
        "nan float",
        ["Topic", {"room": "#a", "text": "t", "nick": "n", "time": float("nan")}],
    ),
    (
        "bad literal",
        ["MaskRemoved", {"room": "#a", "nick": "n", "kind": "gag", "mask": "m"}],
    ),
    (
        "unhashable literal",
        ["MaskRemoved", {"room": "#a", "nick": "n", "kind": [], "mask": "m"}],
    ),
    (
        "union none of them",
        ["SettingChanged", {"room": "#a", "nick": "n", "setting": "key", "value": []}],
    ),
    ("lone surrogate", ["Joined", {"room": "#a", "nick": "\ud800"}]),
    ("said lone surrogate", ["Said", "#a", "b", "\udfff x"]),
    ("said too few", ["Said", "#a", "b"]),
    ("said too many", ["Said", "#a", "b", "c", "", "x"]),
    ("said not a string", ["Said", "#a", "b", 5]),
    ("said object", ["Said", {"room": "#a", "nick": "b", "text": "c"}]),
    (
        "nested missing",
        [
            "MaskAdded",
            {"room": "#a", "nick": "n", "kind": "ban", "entry": {"mask": "m"}},
        ],
    ),
    (
        "nested not object",
        ["MaskAdded", {"room": "#a", "nick": "n", "kind": "ban", "entry": "m"}],
    ),
    (
        "nested extra",
        [
            "MaskAdded",
            {
                "room": "#a",
                "nick": "n",
                "kind": "ban",
                "entry": {
                    "mask": "m",
                    "by": "b",
                    "at": 1,
                    "expires": None,
                    "reason": "",
                    "x": 1,
                },
            },
        ],
    ),
    ("sequence not list", ["Motd", {"lines": "abc"}]),
    ("sequence bad item", ["Motd", {"lines": ["a", 1]}]),
    ("tuple marker not list", ["Motd", {"lines": {"tuple": "ab"}}]),
    ("tuple marker extra key", ["Motd", {"lines": {"tuple": [], "x": 1}}]),
    ("other marker", ["Motd", {"lines": {"list": []}}]),
    ("frozenset not list", ["Names", {"room": "#a", "nicks": [], "operators": "ab"}]),
    (
        "frozenset unhashable",
        ["Names", {"room": "#a", "nicks": [], "operators": [["a"]]}],
    ),
    ("pair too short", ["RoomList", {"rooms": [["#a"]]}]),
    ("pair too long", ["RoomList", {"rooms": [["#a", 1, 2]]}]),
    ("pair wrong type", ["RoomList", {"rooms": [["#a", "1"]]}]),
    ("error unknown", ["Refused", {"error": ["Nope", {}]}]),
    ("error event", ["Refused", {"error": ["Joined", {"room": "#a", "nick": "b"}]}]),
    ("error bad field", ["Refused", {"error": ["NickTaken", {"nick": None}]}]),
    ("error not list", ["Refused", {"error": "NickTaken"}]),
]

MALFORMED_ERRORS: list[tuple[str, object]] = [
    ("unknown", ["Nope", {}]),
    ("base class", ["ChatError", {}]),
    ("event", ["Said", "#a", "b", "c"]),
    ("missing field", ["TargetNotInRoom", {"room": "#a"}]),
    ("extra field", ["NickTaken", {"nick": "b", "room": "#a"}]),
    ("wrong type", ["TopicTooLong", {"limit": "5"}]),
    ("bad literal", ["CannotSpeak", {"room": "#a", "why": "sulking"}]),
    ("not a list", {"NickTaken": {"nick": "b"}}),
    ("positional", ["NickTaken", "b"]),
]

_JUNK: list[object] = [None, True, 0, -1, 1.5, "", "x", [], {}, [[[]]], {"tuple": []}]


def _mutations(value: object) -> Iterator[object]:
    """C{value} with each part in turn replaced by each piece of junk."""
    yield from _JUNK
    if isinstance(value, list):
        for i, item in enumerate(value):
            for changed in _mutations(item):
                yield [*value[:i], changed, *value[i + 1 :]]
            yield value[:i] + value[i + 1 :]
        yield [*value, "extra"]
    elif isinstance(value, dict):
        for key, item in value.items():
            for changed in _mutations(item):
                yield {**value, key: changed}
            yield {k: v for k, v in value.items() if k != key}
        yield {**value, "extra": 1}


class MalformedTests(SynchronousTestCase):
    def test_events(self) -> None:
        for why, value in MALFORMED_EVENTS:
            with self.subTest(why):
                self.assertRaises(CodecError, codec.decode_event, value)

    def test_errors(self) -> None:
        for why, value in MALFORMED_ERRORS:
            with self.subTest(why):
                self.assertRaises(CodecError, codec.decode_error, value)

    def test_mutations(self) -> None:
        """
        Every event, its encoding damaged in every place in every way:
        each decodes to an event or raises CodecError, nothing else.
        """
        decoded = refused = 0
        for cls in sorted(codec.EVENT_TYPES, key=lambda cls: cls.__name__):
            for value in _mutations(codec.encode_event(next(instances(cls)))):
                try:
                    event = codec.decode_event(value)
                except CodecError:
                    refused += 1
                else:
                    self.assertIsInstance(event, events.Event)
                    decoded += 1
        self.assertGreater(refused, 1000)
        self.assertGreater(decoded, 0)  # dropping a defaulted field is fine


class BatchTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        entries: list[object] = [["anything", 1, 2.5, None, True, {"a": "\u00e9"}], []]
        self.assertEqual(codec.loads(codec.dumps(entries)), entries)

    def test_compact(self) -> None:
        self.assertEqual(codec.dumps([{"a": [1, 2]}, "b"]), b'[{"a":[1,2]},"b"]')

    def test_not_utf8(self) -> None:
        self.assertRaises(CodecError, codec.loads, b'["caf\xe9"]')
        self.assertRaises(CodecError, codec.loads, b"\xff\xfe[]")

    def test_not_json(self) -> None:
        for data in (b"", b"[1,", b"[1]]", b"['a']", b"[undefined]", b"[1] x"):
            with self.subTest(data):
                self.assertRaises(CodecError, codec.loads, data)

    def test_not_a_list(self) -> None:
        for data in (b"{}", b"5", b'"[]"', b"null"):
            with self.subTest(data):
                self.assertRaises(CodecError, codec.loads, data)

    def test_not_bytes(self) -> None:
        self.assertRaises(CodecError, codec.loads, "[]")

    def test_nesting_bomb(self) -> None:
        for open_, close in ((b"[", b"]"), (b'{"a":', b"}")):
            depth = 100_000
            data = b"[" + open_ * depth + b"1" + close * depth + b"]"
            self.assertRaises(CodecError, codec.loads, data)

    def test_huge(self) -> None:
        data = b'["' + b"x" * codec.MAX_BATCH + b'"]'
        self.assertRaises(CodecError, codec.loads, data)
        self.assertRaises(CodecError, codec.dumps, ["x" * codec.MAX_BATCH])

    def test_huge_number(self) -> None:
        self.assertRaises(CodecError, codec.loads, b"[" + b"9" * 10_000 + b"]")

    def test_non_finite(self) -> None:
        for data in (b"[NaN]", b"[Infinity]", b"[-Infinity]"):
            with self.subTest(data):
                self.assertRaises(CodecError, codec.loads, data)
        self.assertRaises(CodecError, codec.dumps, [float("nan")])

    def test_dumps_refuses_what_is_not_json(self) -> None:
        self.assertRaises(CodecError, codec.dumps, [object()])
        self.assertRaises(CodecError, codec.dumps, [{1: 2, (1,): 3}])
        self.assertRaises(CodecError, codec.dumps, ("a",))

    def test_lone_surrogate_written(self) -> None:
        """
        A lone surrogate (no UTF-8 decoder makes one) becomes C{?} rather
        than failing the batch.
        """
        self.assertEqual(codec.loads(codec.dumps(["a\ud800b"])), ["a?b"])


class EncodeTests(SynchronousTestCase):
    """
    What this node cannot publish fails here, with CodecError, rather than
    in every other node's reader.
    """

    def test_front_end_event(self) -> None:
        from chatservice.frontends.irc.renderer import IRCError, TagMsg

        self.assertRaises(CodecError, codec.encode_event, TagMsg("a", "#b", "+x"))
        self.assertRaises(CodecError, codec.encode_error, IRCError("461", ("X",)))
        self.assertRaises(
            CodecError,
            codec.encode_event,
            events.Refused(IRCError("461", ("X",))),
        )

    def test_wrong_types(self) -> None:
        bad: list[events.Event] = [
            events.Said("#a", "b", 5),  # type: ignore[arg-type]
            events.Joined("#a", None),  # type: ignore[arg-type]
            events.Motd("abc"),
            events.Motd({"a"}),  # type: ignore[arg-type]
            events.Entered("#a", True),
            events.Topic("#a", "t", "n", float("inf")),
            events.Names("#a", [], {"a"}),  # type: ignore[arg-type]
            events.RoomList([("#a", 1, 2)]),  # type: ignore[list-item]
            events.MaskRemoved("#a", "n", "gag", "m"),  # type: ignore[arg-type]
            events.MaskAdded("#a", "n", "ban", "m"),  # type: ignore[arg-type]
            events.Refused("no"),  # type: ignore[arg-type]
        ]
        for event in bad:
            with self.subTest(repr(event)):
                self.assertRaises(CodecError, codec.encode_event, event)

    def test_not_an_event(self) -> None:
        self.assertRaises(CodecError, codec.encode_event, "Said")
        self.assertRaises(CodecError, codec.encode_event, events.Event())


class RoomTests(SynchronousTestCase):
    """
    A room's entry of the log: its items come back as they went, the lines
    said short and one sender's run of lines in one item.
    """

    def round_trip(self, items: list[codec.RoomItem]) -> list[codec.RoomItem]:
        wire = codec.encode_room(items)
        decoded = codec.decode_room("#tea", codec.loads(codec.dumps(wire)))
        lines: list[codec.RoomItem] = []
        for item in decoded:
            if isinstance(item, codec.Run):
                lines += [(item.sid, event) for event in item.events()]
            else:
                lines.append(item)
        self.assertEqual(lines, items)
        return wire  # type: ignore[return-value]

    def test_runs(self) -> None:
        """
        A sender's consecutive lines of one kind are one item; another
        sender, kind or name starts the next.
        """
        items: list[codec.RoomItem] = [
            ("n/1", events.Said("#tea", "alice", "one")),
            ("n/1", events.Said("#tea", "alice", "two")),
            ("n/2", events.Said("#tea", "bob", "three")),
            ("n/2", events.Acted("#tea", "bob", "waves")),
            ("n/2", events.Noticed("#tea", "bob", "note")),
            ("n/2", events.Said("#tea", "bobby", "renamed")),
            ("n/1", events.Said("#tea", "alice", "four")),
        ]
        self.assertEqual(
            self.round_trip(items),
            [
                ["n/1", ["S", "alice", ["one", "two"]]],
                ["n/2", ["S", "bob", ["three"]]],
                ["n/2", ["A", "bob", ["waves"]]],
                ["n/2", ["N", "bob", ["note"]]],
                ["n/2", ["S", "bobby", ["renamed"]]],
                ["n/1", ["S", "alice", ["four"]]],
            ],
        )

    def test_tags_joins_and_others(self) -> None:
        """
        A line with tags is an item of its own; a join keeps whether the
        joiner is an operator; other events are as encode_event writes them.
        """
        items: list[codec.RoomItem] = [
            ("n/1", events.Joined("#tea", "alice"), True),
            ("n/1", events.Said("#tea", "alice", "hi", "+draft/x=1")),
            ("n/1", events.Said("#tea", "alice", "plain")),
            (None, events.Left("#tea", "bob", "bye")),
            ("n/1", events.TopicSet("#tea", "alice", "tea")),
        ]
        wire = self.round_trip(items)
        self.assertEqual(
            wire[:3],
            [
                ["n/1", ["Joined", {"room": "#tea", "nick": "alice"}], True],
                ["n/1", ["S", "alice", "hi", "+draft/x=1"]],
                ["n/1", ["S", "alice", ["plain"]]],
            ],
        )

    def test_not_carried(self) -> None:
        """What the log cannot carry fails where it is written."""
        for event in [
            events.Said("#a", "b", 5),  # type: ignore[arg-type]
            events.Acted("#a", None, "x"),  # type: ignore[arg-type]
            events.Said("#a", "b", "c", 7),  # type: ignore[arg-type]
            events.Motd({"a"}),  # type: ignore[arg-type]
        ]:
            with self.subTest(repr(event)):
                self.assertRaises(CodecError, codec.encode_room, [("n/1", event)])

    def test_malformed(self) -> None:
        """Anything else another node could send fails with CodecError."""
        good = ["n/1", ["S", "alice", ["one"]]]
        for room, wire in [
            (5, [good]),
            ("#tea", "items"),
            ("#tea", [["n/1"]]),
            ("#tea", [["n/1", ["S", "a", ["x"]], True, 4]]),
            ("#tea", [[7, ["S", "alice", ["x"]]]]),
            ("#tea", [["n/1", ["S", "alice", "x", "t", "u"]]]),
            ("#tea", [["n/1", ["S", 5, ["x"]]]]),
            ("#tea", [["n/1", ["S", "alice", [5]]]]),
            ("#tea", [["n/1", ["S", "alice", ["ok", None]]]]),
            ("#tea", [["n/1", ["S", "alice", {"x": 1}]]]),
            ("#tea", [["n/1", ["S", "alice", ["a\ud800"]]]]),
            ("#tea", [["n/1", ["S", "alice", "x", 5]]]),
            ("#tea", [["n/1", [["S"], "alice", ["x"]]]]),
            ("#tea", [["n/1", ["Q", "alice", ["x"]]]]),
            ("#tea", [["n/1", ["Said", "alice", ["x"]]]]),
        ]:
            with self.subTest(room=room, wire=wire):
                self.assertRaises(CodecError, codec.decode_room, room, wire)
