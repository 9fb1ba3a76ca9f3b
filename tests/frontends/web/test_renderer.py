"""
Tests for L{chatservice.frontends.web.renderer}: every core event and
every typed error, rendered as a JSON text frame and read back.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from wsproto import Connection, ConnectionType
from wsproto.events import TextMessage

from chatservice.core import errors, events
from chatservice.core.audit import AuditEntry
from chatservice.core.errors import ChatError
from chatservice.core.events import Event, HistoryLine
from chatservice.core.server_bans import ServerBan
from chatservice.frontends.web import requests
from chatservice.frontends.web.frames import text_frame
from chatservice.frontends.web.renderer import (
    Answered,
    EmptyHistory,
    JSONRenderer,
    RefusedRequest,
    encode,
)

NOW = 1700000000.25


def read(frame: bytes) -> dict[str, Any]:
    """The one JSON object in C{frame}, read as a browser would."""
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(frame)
    (message,) = list(client.events())
    assert isinstance(message, TextMessage) and message.message_finished
    decoded = json.loads(message.data)
    assert isinstance(decoded, dict)
    return decoded


EXAMPLES: list[tuple[Event, dict[str, Any]]] = [
    (
        events.Said("lobby", "ann", "hi <b>"),
        {"type": "said", "room": "lobby", "nick": "ann", "text": "hi <b>", "time": NOW},
    ),
    (
        events.Acted("lobby", "ann", "waves"),
        {
            "type": "action",
            "room": "lobby",
            "nick": "ann",
            "text": "waves",
            "time": NOW,
        },
    ),
    (
        events.Noticed("lobby", "ann", "note"),
        {"type": "notice", "room": "lobby", "nick": "ann", "text": "note", "time": NOW},
    ),
    (
        events.Joined("lobby", "ann"),
        {"type": "joined", "room": "lobby", "nick": "ann", "time": NOW},
    ),
    (
        events.Left("lobby", "ann", "bye"),
        {"type": "left", "room": "lobby", "nick": "ann", "reason": "bye", "time": NOW},
    ),
    (
        events.Quit("lobby", "ann", "gone"),
        {"type": "quit", "room": "lobby", "nick": "ann", "reason": "gone", "time": NOW},
    ),
    (
        events.Renamed("lobby", "ann", "anna"),
        {"type": "renamed", "room": "lobby", "old": "ann", "new": "anna", "time": NOW},
    ),
    (
        events.TopicSet("lobby", "ann", "news"),
        {
            "type": "topic_set",
            "room": "lobby",
            "nick": "ann",
            "text": "news",
            "time": NOW,
        },
    ),
    (
        events.SettingChanged("lobby", "ann", "topic_locked", True),
        {
            "type": "setting_changed",
            "room": "lobby",
            "nick": "ann",
            "setting": "topic_locked",
            "value": True,
            "time": NOW,
        },
    ),
    (
        events.Kicked("lobby", "bob", "ann", "spam"),
        {
            "type": "kicked",
            "room": "lobby",
            "nick": "bob",
            "by": "ann",
            "reason": "spam",
            "time": NOW,
        },
    ),
    (
        events.Opped("lobby", "bob", "ann"),
        {"type": "opped", "room": "lobby", "nick": "bob", "by": "ann", "time": NOW},
    ),
    (
        events.Deopped("lobby", "bob", "ann"),
        {"type": "deopped", "room": "lobby", "nick": "bob", "by": "ann", "time": NOW},
    ),
    (
        events.Voiced("lobby", "bob", "ann"),
        {"type": "voiced", "room": "lobby", "nick": "bob", "by": "ann", "time": NOW},
    ),
    (
        events.Devoiced("lobby", "bob", "ann"),
        {"type": "devoiced", "room": "lobby", "nick": "bob", "by": "ann", "time": NOW},
    ),
    (
        events.SettingChanged("lobby", "ann", "limit", None),
        {
            "type": "setting_changed",
            "room": "lobby",
            "nick": "ann",
            "setting": "limit",
            "value": None,
            "time": NOW,
        },
    ),
    (
        events.MaskAdded(
            "lobby", "ann", "ban", events.Ban("bob!*@*", "ann", 1.0, None, "spam")
        ),
        {
            "type": "mask_added",
            "room": "lobby",
            "nick": "ann",
            "kind": "ban",
            "entry": {
                "mask": "bob!*@*",
                "by": "ann",
                "at": 1.0,
                "expires": None,
                "reason": "spam",
            },
            "time": NOW,
        },
    ),
    (
        events.MaskRemoved("lobby", "ann", "quiet", "bob!*@*"),
        {
            "type": "mask_removed",
            "room": "lobby",
            "nick": "ann",
            "kind": "quiet",
            "mask": "bob!*@*",
            "time": NOW,
        },
    ),
    (
        events.MaskList(
            "lobby", "ban", [events.Ban("bob!*@*", "ann", 1.0, None, "spam")]
        ),
        {
            "type": "mask_list",
            "room": "lobby",
            "kind": "ban",
            "entries": [
                {
                    "mask": "bob!*@*",
                    "by": "ann",
                    "at": 1.0,
                    "expires": None,
                    "reason": "spam",
                }
            ],
        },
    ),
    (
        events.RoomRegistered("lobby", "ann", "ann"),
        {
            "type": "room_registered",
            "room": "lobby",
            "nick": "ann",
            "founder": "ann",
            "time": NOW,
        },
    ),
    (
        events.Invited("lobby", "ann"),
        {"type": "invited", "room": "lobby", "by": "ann"},
    ),
    (
        events.InviteSent("lobby", "bob"),
        {"type": "invite_sent", "room": "lobby", "nick": "bob"},
    ),
    (
        events.RoomSettings(
            "lobby", True, "k", 5, False, True, False, True, "ann", 1.0
        ),
        {
            "type": "room_settings",
            "room": "lobby",
            "invite_only": True,
            "key": "k",
            "limit": 5,
            "moderated": False,
            "no_external": True,
            "secret": False,
            "topic_locked": True,
            "founder": "ann",
            "created": 1.0,
        },
    ),
    (events.ServerOperatorUp(), {"type": "server_operator_up"}),
    (events.ServerOperatorDown(), {"type": "server_operator_down"}),
    (
        events.Killed("boss", "flood"),
        {"type": "killed", "by": "boss", "reason": "flood"},
    ),
    (
        events.KillDone("bob", "flood"),
        {"type": "kill_done", "nick": "bob", "reason": "flood"},
    ),
    (
        events.ServerNotice("boss", "restart <soon>"),
        {"type": "server_notice", "by": "boss", "text": "restart <soon>"},
    ),
    (
        events.ServerBanAdded(ServerBan("*!*@10.0.0.0/8", "boss", 1.5, None, "x"), 2),
        {
            "type": "server_ban_added",
            "entry": {
                "mask": "*!*@10.0.0.0/8",
                "by": "boss",
                "at": 1.5,
                "expires": None,
                "reason": "x",
            },
            "removed": 2,
        },
    ),
    (
        events.ServerBanRemoved("$a:bob"),
        {"type": "server_ban_removed", "mask": "$a:bob"},
    ),
    (
        events.ServerBanList([ServerBan("$a:bob", "boss", 1.0, 61.0, "")], 7),
        {
            "type": "server_ban_list",
            "entries": [
                {
                    "mask": "$a:bob",
                    "by": "boss",
                    "at": 1.0,
                    "expires": 61.0,
                    "reason": "",
                }
            ],
            "total": 7,
        },
    ),
    (
        events.AuditLog([AuditEntry(2.0, "boss", "kill", "bob", "", "flood")]),
        {
            "type": "audit_log",
            "entries": [
                {
                    "time": 2.0,
                    "actor": "boss",
                    "action": "kill",
                    "target": "bob",
                    "room": "",
                    "detail": "flood",
                }
            ],
        },
    ),
    (
        events.Private("ann", "psst", False),
        {
            "type": "private",
            "sender": "ann",
            "text": "psst",
            "notice": False,
            "time": NOW,
        },
    ),
    (
        events.Welcome("guest1", None),
        {"type": "welcome", "nick": "guest1", "room": None},
    ),
    (events.Motd(["a", "b"]), {"type": "motd", "lines": ["a", "b"]}),
    (events.Entered("lobby", 3), {"type": "entered", "room": "lobby", "count": 3}),
    (
        events.Topic("lobby", "news", "ann", 12.5),
        {"type": "topic", "room": "lobby", "text": "news", "nick": "ann", "time": 12.5},
    ),
    (events.NoTopic("lobby"), {"type": "no_topic", "room": "lobby"}),
    (
        events.OperatorUnchanged("lobby", "bob", True),
        {
            "type": "operator_unchanged",
            "room": "lobby",
            "nick": "bob",
            "operator": True,
        },
    ),
    (
        events.Replay(
            "lobby",
            [
                HistoryLine(1.0, "message", "ann", "hi"),
                HistoryLine(2.0, "action", "bob", "waves"),
            ],
            "d12.3",
        ),
        {
            "type": "replay",
            "room": "lobby",
            "lines": [
                {"time": 1.0, "kind": "message", "nick": "ann", "text": "hi"},
                {"time": 2.0, "kind": "action", "nick": "bob", "text": "waves"},
            ],
            "before": "d12.3",
        },
    ),
    (
        events.Names("lobby", ["ann", "bob"], frozenset({"bob", "ann"})),
        {
            "type": "names",
            "room": "lobby",
            "nicks": ["ann", "bob"],
            "voiced": [],
            "secret": False,
            "operators": ["ann", "bob"],
        },
    ),
    (
        events.RoomList([("lobby", 3), ("dev", 1)]),
        {
            "type": "rooms",
            "rooms": [{"room": "lobby", "count": 3}, {"room": "dev", "count": 1}],
        },
    ),
    (
        events.NickChanged("anna", "ann"),
        {"type": "nick_changed", "nick": "anna", "old": "ann"},
    ),
    (events.SameNick("ann"), {"type": "same_nick", "nick": "ann"}),
    (events.Displaced("ann"), {"type": "displaced", "nick": "ann"}),
    (events.Registered("ann"), {"type": "registered", "nick": "ann"}),
    (events.LoggedIn("ann"), {"type": "logged_in", "nick": "ann"}),
    (events.LoggedOut(), {"type": "logged_out"}),
    (events.PasswordChanged(), {"type": "password_changed"}),
    (events.Goodbye(), {"type": "goodbye"}),
    (events.Closing(), {"type": "closing"}),
    (
        events.Refused(errors.NickTaken("ann")),
        {"type": "error", "code": "nick_taken", "nick": "ann"},
    ),
    (Answered(7), {"type": "ok", "id": 7}),
    (
        RefusedRequest(errors.NoSuchRoom("x"), "a1"),
        {"type": "error", "code": "no_such_room", "room": "x", "id": "a1"},
    ),
    (
        EmptyHistory("lobby"),
        {"type": "replay", "room": "lobby", "lines": [], "before": None},
    ),
]


def sample(cls: type[ChatError]) -> ChatError:
    """An instance of the error C{cls}, its fields filled by their types."""
    values: list[Any] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind = str(field.type)
        if kind.startswith("Literal["):
            values.append(eval(kind[len("Literal[") :].split(",")[0].rstrip("]")))
        elif kind.startswith("int"):
            values.append(3)
        elif kind.startswith("float"):
            values.append(1.5)
        else:
            values.append("x<y>")
    return cls(*values)


def error_classes() -> list[type[ChatError]]:
    found = []
    for module in (errors, requests):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, ChatError)
                and cls is not ChatError
                and cls.__module__ == module.__name__
            ):
                found.append(cls)
    return found


class RendererTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.renderer = JSONRenderer(lambda: NOW)

    def test_examples(self) -> None:
        """Each event renders as its documented object."""
        for event, expected in EXAMPLES:
            self.assertEqual(read(self.renderer.render(event)), expected, event)
            self.assertEqual(
                self.renderer.render_to("ann", event), self.renderer.render(event)
            )

    def test_everyCoreEvent(self) -> None:
        """
        Every event the core defines has an example above: a new event
        fails here until the protocol says how it looks.
        """
        covered = {type(event) for event, _ in EXAMPLES}
        for _, cls in inspect.getmembers(events, inspect.isclass):
            if (
                issubclass(cls, Event)
                and cls.__module__ == events.__name__
                and dataclasses.is_dataclass(cls)
            ):
                self.assertIn(cls, covered)

    def test_everyError(self) -> None:
        """
        Every typed error, the core's and the web front end's, is an
        C{error} object with its code and each of its fields.
        """
        classes = error_classes()
        self.assertIn(errors.ExcessFlood, classes)
        self.assertIn(requests.BadField, classes)
        for cls in classes:
            error = sample(cls)
            found = read(self.renderer.render(events.Refused(error)))
            self.assertEqual(found["type"], "error")
            self.assertEqual(found["code"], cls.code)
            for field in dataclasses.fields(error):  # type: ignore[arg-type]
                self.assertEqual(found[field.name], getattr(error, field.name))

    def test_textIsData(self) -> None:
        """
        Markup, quotes, control characters and non-ASCII text come back
        exactly, as data; the JSON is UTF-8, not escaped.
        """
        text = '<img src=x onerror=alert(1)> "\\ \x1b[31m ü 😀 \u2028'
        frame = self.renderer.render(events.Said("r", "n", text))
        self.assertEqual(read(frame)["text"], text)
        self.assertIn("😀".encode(), frame)

    def test_loneSurrogate(self) -> None:
        """
        Text with a lone surrogate (a JSON escape can make one) renders
        rather than failing a fan-out.
        """
        found = read(self.renderer.render(events.Said("r", "n", "a\ud800b")))
        self.assertEqual(found["text"], "a?b")

    def test_linesAsJsonWritesThem(self) -> None:
        """
        Lines said, acted and noticed, which are written without json for
        speed, are the very bytes json writes for their objects, whatever
        the strings hold and whether the clock gives a float or an integer.
        """
        texts = [
            "plain",
            '<img src=x> "quoted" \\ back\\slash /',
            "\x00\x1f\x7f \t\n\r \u2028\u2029 ü 😀",
            "a\ud800b",
            "",
        ]
        for clock in (lambda: NOW, lambda: 1700000000, lambda: 0.1 + 0.2):
            renderer = JSONRenderer(clock)
            for cls in (events.Said, events.Acted, events.Noticed):
                for text in texts:
                    event = cls('r\u00e9 "x"', 'n"\\', text)
                    self.assertEqual(
                        renderer.render(event),
                        text_frame(encode(renderer.object(event))),
                        (cls, text),
                    )

    def test_timeFromClock(self) -> None:
        """Room events are dated when rendered, by the renderer's clock."""
        times = iter([10.0, 11.1234])
        renderer = JSONRenderer(lambda: next(times))
        self.assertEqual(read(renderer.render(events.Joined("r", "n")))["time"], 10.0)
        self.assertEqual(
            read(renderer.render(events.Said("r", "n", "t")))["time"], 11.123
        )
