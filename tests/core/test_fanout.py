"""
Fan-out renders a room's batch once per kind of front end, whatever the
number of members, and hands every member of a kind the same bytes.
"""

from __future__ import annotations

from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase

from chatservice.core.chat import Chat
from chatservice.core.events import Event, RoomList, Said
from chatservice.core.rooms import Member
from chatservice.frontends.line.wire import LineRenderer
from tests.support.helpers import capture_events
from tests.support.memory import ManualScheduler


class CountingRenderer:
    """
    Wraps a renderer and counts the events it was asked to render.
    """

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls: list[Event] = []

    def render(self, event: Event) -> bytes:
        self.calls.append(event)
        return self.inner.render(event)  # type: ignore[attr-defined, no-any-return]

    def render_to(self, nick: str, event: Event) -> bytes:
        return self.render(event)


class ShoutingRenderer:
    """
    A second kind of front end, for tests only: everything in capitals.
    """

    def render(self, event: Event) -> bytes:
        return (repr(event).upper() + "\n").encode()

    def render_to(self, nick: str, event: Event) -> bytes:
        return self.render(event)


class Sink:
    def __init__(self, renderer: object) -> None:
        self.renderer = renderer
        self.writes: list[bytes] = []

    def deliver(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        pass


class TwoRenderersTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.turns = ManualScheduler()
        self.chat = Chat(schedule=self.turns)
        self.lines = CountingRenderer(LineRenderer())
        self.shouts = CountingRenderer(ShoutingRenderer())

    def members(self, renderer: CountingRenderer, n: int, prefix: str) -> list[Member]:
        members = []
        for i in range(n):
            member = self.chat.connect(Sink(renderer), f"{prefix}{i}")
            self.chat.join(member, "lobby", announce=False)
            members.append(member)
        self.turns.run()
        for member in members:
            member.session.writes.clear()  # type: ignore[attr-defined]
        return members

    def check(self, n: int) -> None:
        lines = self.members(self.lines, n, "l")
        shouts = self.members(self.shouts, n, "s")
        for member in lines:
            member.session.writes.clear()  # type: ignore[attr-defined]
        self.lines.calls.clear()
        self.shouts.calls.clear()
        speaker = lines[0]
        room = self.chat.room("lobby")
        self.chat.say(speaker, room, "one")
        self.chat.say(shouts[0], room, "two")
        self.turns.run()
        batch = [Said("lobby", "l0", "one"), Said("lobby", "s0", "two")]
        # One render per event per kind of front end, for 2 or 200 members.
        self.assertEqual(self.lines.calls, batch)
        self.assertEqual(self.shouts.calls, batch)
        line_writes = [m.session.writes for m in lines[1:]]  # type: ignore[attr-defined]
        shout_writes = [m.session.writes for m in shouts[1:]]  # type: ignore[attr-defined]
        self.assertEqual(line_writes[0], [b"[lobby] <l0> one\r\n[lobby] <s0> two\r\n"])
        self.assertTrue(shout_writes[0][0].startswith(b"SAID(ROOM='LOBBY'"))
        # The very same bytes object for every member of one kind.
        for writes in line_writes:
            self.assertIs(writes[0], line_writes[0][0])
        for writes in shout_writes:
            self.assertIs(writes[0], shout_writes[0][0])
        # A sender gets the batch without its own line.
        self.assertEqual(
            speaker.session.writes,  # type: ignore[attr-defined]
            [b"[lobby] <s0> two\r\n"],
        )

    def test_fewMembers(self) -> None:
        self.check(2)

    def test_manyMembers(self) -> None:
        self.check(200)


class FailingSink(Sink):
    def deliver(self, data: bytes) -> None:
        raise RuntimeError("a broken session")


class DeliveryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.turns = ManualScheduler()
        self.chat = Chat(schedule=self.turns)
        self.renderer = LineRenderer()

    def test_deliveriesCountLines(self) -> None:
        """
        A reply of several lines counts as that many deliveries, as
        C{chat_deliveries_total} documents: lines queued for a recipient.
        """
        member = self.chat.connect(Sink(self.renderer), "alice")
        before = self.chat.stats.deliveries
        self.chat.tell(member, RoomList([("lobby", 3), ("python", 1)]))
        self.assertEqual(self.chat.stats.deliveries - before, 3)

    def test_failingSessionHarmsNobody(self) -> None:
        """
        A session whose delivery raises is logged; the members after it
        still get their output, and later turns are still flushed.
        """
        events = capture_events(self)
        broken = self.chat.connect(FailingSink(self.renderer), "broken")
        alice = self.chat.connect(Sink(self.renderer), "alice")
        room = self.chat.join(broken, "lobby", announce=False)
        self.chat.join(alice, "lobby", announce=False)
        self.turns.run()
        alice.session.writes.clear()  # type: ignore[attr-defined]
        self.chat.say(broken, room, "one")
        self.chat.tell(broken, RoomList([]))
        self.turns.run()
        self.chat.say(broken, room, "two")
        self.turns.run()
        self.assertEqual(
            alice.session.writes,  # type: ignore[attr-defined]
            [b"[lobby] <broken> one\r\n", b"[lobby] <broken> two\r\n"],
        )
        # Its own output failed twice: alice joining, and the listing.
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        failed = [e for e in events if e.get("log_failure") is not None]
        self.assertEqual(len(failed), 2)
        for event in failed:
            self.assertIn("broken", formatEvent(event))


class EchoingRenderer(CountingRenderer):
    """A renderer whose members get back the lines they said."""

    echoed = frozenset({Said})


class EchoTests(SynchronousTestCase):
    """
    A renderer that lists an event type in C{echoed} has its members sent
    the events of that type they caused; no other renderer does.
    """

    def test_echoed(self) -> None:
        turns = ManualScheduler()
        chat = Chat(schedule=turns)
        echoing = EchoingRenderer(LineRenderer())
        plain = CountingRenderer(LineRenderer())
        a = chat.connect(Sink(echoing), "a")
        b = chat.connect(Sink(plain), "b")
        c = chat.connect(Sink(plain), "c")
        room = chat.join(a, "lobby", announce=False)
        chat.join(b, "lobby", announce=False)
        chat.join(c, "lobby", announce=False)
        turns.run()
        for member in (a, b, c):
            member.session.writes.clear()  # type: ignore[attr-defined]
        echoing.calls.clear()
        plain.calls.clear()
        chat.say(a, room, "from a")
        turns.run()
        chat.say(b, room, "from b")
        chat.say(a, room, "again")
        turns.run()
        self.assertEqual(
            a.session.writes,  # type: ignore[attr-defined]
            [b"[lobby] <a> from a\r\n", b"[lobby] <b> from b\r\n[lobby] <a> again\r\n"],
        )
        self.assertEqual(
            b.session.writes,  # type: ignore[attr-defined]
            [b"[lobby] <a> from a\r\n", b"[lobby] <a> again\r\n"],
        )
        # Each line rendered once per renderer, echo or not.
        self.assertEqual(len(echoing.calls), 3)
        self.assertEqual(len(plain.calls), 3)

    def test_joinNotEchoed(self) -> None:
        chat = Chat()
        a = chat.connect(Sink(EchoingRenderer(LineRenderer())), "a")
        chat.join(a, "lobby", announce=False)
        self.assertEqual(a.session.writes, [])  # type: ignore[attr-defined]
