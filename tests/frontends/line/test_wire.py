"""
Tests for L{chatservice.frontends.line.wire}: every core event and every
typed error has a line, and the lines of room moderation read as
docs/protocol.md shows them.
"""

from __future__ import annotations

import dataclasses
import inspect

from twisted.trial.unittest import SynchronousTestCase

from chatservice.core import errors, events
from chatservice.core.errors import ChatError
from chatservice.core.events import Ban, Event
from chatservice.frontends.line import wire
from chatservice.frontends.line.wire import LineRenderer, span, until
from tests.frontends.web.test_renderer import sample

# 2026-11-24 09:15:02 UTC
WHEN = 1795511702.0

EXAMPLES: list[tuple[Event, list[str]]] = [
    (
        events.MaskAdded("r", "ann", "ban", Ban("bob!*@*", "ann", WHEN, None, "")),
        ["[r] --- ann banned bob!*@*"],
    ),
    (
        events.MaskAdded(
            "r", "ann", "quiet", Ban("*!*@10.0.0.0/8", "ann", WHEN, WHEN + 5400, "x")
        ),
        ["[r] --- ann muted *!*@10.0.0.0/8 for 90m (x)"],
    ),
    (events.MaskRemoved("r", "ann", "ban", "$a:bob"), ["[r] --- ann unbanned $a:bob"]),
    (events.MaskRemoved("r", "ann", "quiet", "b!*@*"), ["[r] --- ann unmuted b!*@*"]),
    (events.MaskList("r", "ban", []), ["*** r has no bans."]),
    (
        events.MaskList(
            "r",
            "quiet",
            [
                Ban("b!*@*", "ann", WHEN, WHEN + 600, "calm"),
                Ban("$a:c", "bo", WHEN, None, ""),
            ],
        ),
        [
            "*** Mutes of r (2):",
            "***   b!*@* (by ann at 2026-11-24 09:15:02, until 2026-11-24 09:25 UTC)"
            ": calm",
            "***   $a:c (by bo at 2026-11-24 09:15:02, for ever)",
        ],
    ),
    (
        events.Invited("r", "ann"),
        ["*** ann invites you to r: /join r to enter."],
    ),
    (events.InviteSent("r", "bob"), ["*** You invited bob to r."]),
    (
        events.RoomSettings("r", True, None, 5, False, False, True, True, "ann", WHEN),
        [
            "*** Settings of r: invite on, key off, limit 5, moderated off, "
            "secret on, topiclock on, external on; registered to ann; created "
            "2026-11-24 09:15:02."
        ],
    ),
    (
        events.RoomRegistered("r", "ann", "ann"),
        ["[r] --- ann registered the room to the account ann"],
    ),
    (events.RoomRegistered("r", "ann", None), ["[r] --- ann unregistered the room"]),
    (
        events.SettingChanged("r", "ann", "no_external", False),
        ["[r] --- ann opened the room to outside messages"],
    ),
    (
        events.SettingChanged("r", "ann", "limit", None),
        ["[r] --- ann removed the member limit"],
    ),
    (
        events.Names("r", ["ann", "bob", "cy"], frozenset(["ann"]), frozenset(["bob"])),
        ["*** r (3 members): @ann, +bob, cy"],
    ),
]

REFUSALS: list[tuple[ChatError, str]] = [
    (errors.Banned("r", ""), "You are banned from r."),
    (errors.Banned("r", "spam"), "You are banned from r: spam."),
    (
        errors.InviteOnly("r"),
        "r is invite only: an operator of it must /invite you first.",
    ),
    (errors.BadKey("r"), "r has a key, and that was not it: /join r KEY."),
    (errors.RoomFull("r"), "r is full; try again later."),
    (errors.CannotSpeak("r", "muted"), "You are muted in r."),
    (
        errors.CannotSpeak("r", "moderated"),
        "r is moderated: only operators and voiced members speak.",
    ),
    (errors.CannotSpeak("r", "banned"), "You are banned from r."),
    (
        errors.ListFull("r", "ban", 1000),
        "The ban list of r is full (1000 entries); remove some first.",
    ),
    (
        errors.ListFull("r", "quiet", 1000),
        "The mute list of r is full (1000 entries); remove some first.",
    ),
    (errors.NoSuchMask("r", "quiet", "b!*@*"), "b!*@* is not muted in r."),
    (errors.AlreadyInRoom("r", "bob"), "bob is in r already."),
    (errors.RoomNotRegistered("r"), "r is not registered."),
    (errors.RoomAlreadyRegistered("r", "ann"), "r is registered to ann already."),
    (errors.NotFounder("r"), "Only the founder of r may do that."),
    (
        errors.NotLoggedIn("register_room"),
        "Only a logged-in user may register a room: /login NICK PASSWORD.",
    ),
    (errors.NotLoggedIn("password"), "Log in first: /login NICK PASSWORD."),
    (
        errors.BadSetting("moderated", "x"),
        "Invalid value for moderated: x (it takes on or off).",
    ),
    (
        errors.BadSetting("topic_locked", "x"),
        "Invalid value for topiclock: x (it takes on or off).",
    ),
]


class RendererTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.renderer = LineRenderer()

    def lines(self, event: Event) -> list[str]:
        data = self.renderer.render(event).decode("utf-8")
        self.assertTrue(data.endswith("\r\n"), data)
        return data.removesuffix("\r\n").split("\r\n")

    def test_examples(self) -> None:
        for event, expected in EXAMPLES:
            self.assertEqual(self.lines(event), expected, event)

    def test_refusals(self) -> None:
        for error, expected in REFUSALS:
            self.assertEqual(self.lines(events.Refused(error)), [f"!!! {expected}"])

    def test_everyCoreEvent(self) -> None:
        """
        Every event the core defines has a line: a new event fails here
        until the line protocol says how it reads.
        """
        fast = {events.Said, events.Acted, events.Noticed}
        missing = [
            cls.__name__
            for _, cls in inspect.getmembers(events, inspect.isclass)
            if issubclass(cls, Event)
            and cls.__module__ == events.__name__
            and dataclasses.is_dataclass(cls)
            and cls not in fast
            and cls not in wire._LINES
        ]
        self.assertEqual(missing, [])

    def test_everyError(self) -> None:
        """
        Every typed error of the core's reads as one C{!!!} line, whatever
        its fields hold.
        """
        classes = [
            cls
            for _, cls in inspect.getmembers(errors, inspect.isclass)
            if issubclass(cls, ChatError)
            and cls is not ChatError
            and cls.__module__ == errors.__name__
        ]
        self.assertIn(errors.CannotSpeak, classes)
        for cls in classes:
            [line] = self.lines(events.Refused(sample(cls)))
            self.assertTrue(line.startswith("!!! ") and len(line) > 8, line)

    def test_span(self) -> None:
        self.assertEqual(
            [span(s) for s in [1, 30, 60, 90, 600, 3600, 5400, 86400, 7 * 86400]],
            ["1s", "30s", "1m", "90s", "10m", "1h", "90m", "1d", "7d"],
        )
        # A clock's fractions of a second do not show.
        self.assertEqual(span(599.9999), "10m")

    def test_until(self) -> None:
        self.assertEqual(until(WHEN), "2026-11-24 09:15 UTC")
