"""
Tests for L{chatservice.frontends.web.wire}: a client's frames read
without wsproto while they are the common kind, and handed to wsproto
from the first that is not; and the run of C{say} requests a read's
messages make (L{WebSession.linesReceived}).
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, Ping, TextMessage

from chatservice.frontends.web.wire import FastFrames
from tests.frontends.web.test_session import WebTestCase


def client_frames(*messages: str | bytes) -> bytes:
    """C{messages} as a client sends them: text, or binary for bytes."""
    client = Connection(ConnectionType.CLIENT)
    return b"".join(
        client.send(TextMessage(m) if isinstance(m, str) else BytesMessage(m))
        for m in messages
    )


class FastFramesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.got: list[bytes | None] = []
        self.reads = 0
        self.fast = FastFrames(self.deliver, 1000)

    def deliver(self, messages: list[bytes | None]) -> None:
        self.reads += 1
        self.got += messages

    def test_cut_anywhere(self) -> None:
        """
        Text frames of every length form, cut at any byte, are read whole
        and in order, each read's messages in one call; nothing goes to
        wsproto.
        """
        messages = ["a", "é" * 100, "", "z" * 300]
        data = client_frames(*messages)
        for cut in range(len(data) + 1):
            self.got = []
            fast = FastFrames(self.deliver, 1000)
            self.assertEqual(fast(data[:cut]) + fast(data[cut:]), b"")
            self.assertEqual([m.decode() for m in self.got if m is not None], messages)
        self.reads = 0
        self.fast(data)
        self.assertEqual(self.reads, 1)

    def test_handed_over(self) -> None:
        """
        From the first frame not of the common kind, everything goes to
        wsproto, for good; what came before is read here first.
        """
        before = client_frames("one")
        for odd in [
            Connection(ConnectionType.CLIENT).send(Ping(b"hi")),
            client_frames(b"binary"),
            client_frames("x" * 1001),
            Connection(ConnectionType.CLIENT).send(
                TextMessage("part", message_finished=False)
            ),
            b"\x81\x03abc",
        ]:
            self.got = []
            fast = FastFrames(self.deliver, 1000)
            after = client_frames("two")
            self.assertEqual(fast(before + odd + after), odd + after)
            self.assertEqual(self.got, [b"one"])
            self.assertEqual(fast(after), after)
            self.assertFalse(fast.active)

    def test_invalid_utf8(self) -> None:
        """A text frame of invalid UTF-8 is wsproto's to refuse."""
        bad = b"\x81\x82\x00\x00\x00\x00\xff\xfe"
        self.assertEqual(self.fast(bad), bad)
        self.assertEqual(self.got, [])


class SayRunTests(WebTestCase):
    def test_run_said_in_one_call(self) -> None:
        """
        A read of say requests to one room is said in one call to the chat,
        and everyone else hears every line, in order.
        """
        line = self.harness.connect()
        web = self.joined()
        line.take()
        calls: list[int] = []
        say_all = self.harness.chat.say_all

        def counted(member: object, room: object, texts: list[str]) -> None:
            calls.append(len(texts))
            say_all(member, room, texts)  # type: ignore[arg-type]

        self.patch(self.harness.chat, "say_all", counted)
        texts = [f"line {n}" for n in range(5)]
        web.feed(
            client_frames(
                *(
                    json.dumps(
                        {"type": "say", "room": "lobby", "text": t},
                        separators=(",", ":"),
                    )
                    for t in texts
                )
            )
        )
        self.assertEqual(calls, [5])
        nick = web.session.nick
        self.assertEqual(line.take(), [f"[lobby] <{nick}> {t}" for t in texts])

    def test_mixed(self) -> None:
        """
        Requests that are not a plain say to the room of the run are
        carried out one by one, in order, answers and refusals included.
        """
        line = self.harness.connect()
        web = self.joined()
        line.take()
        web.events()
        say = {"type": "say", "room": "lobby"}
        web.feed(
            client_frames(
                json.dumps({**say, "text": "a"}),
                json.dumps({**say, "text": "b", "id": 7}),
                json.dumps({**say, "room": "nowhere", "text": "c"}),
                json.dumps({**say, "text": "   "}),
                json.dumps({**say, "text": 5}),
                json.dumps({**say, "text": "d"}),
                '{"type":"say",',
            )
        )
        nick = web.session.nick
        self.assertEqual(
            line.take(),
            [f"[lobby] <{nick}> a", f"[lobby] <{nick}> b", f"[lobby] <{nick}> d"],
        )
        found = web.events()
        self.assertEqual(
            [(e["type"], e.get("code", e.get("id"))) for e in found],
            [
                ("ok", 7),
                ("error", "not_in_room"),
                ("error", "bad_field"),
                ("error", "bad_field"),
                ("error", "invalid_json"),
            ],
        )

    def test_not_in_room(self) -> None:
        """A run to a room the user is not in: one refusal for each."""
        web = self.client()
        web.events()
        request = json.dumps({"type": "say", "room": "lobby", "text": "hi"})
        web.feed(client_frames(request, request))
        self.assertEqual(
            [e["code"] for e in web.events()], ["not_in_room", "not_in_room"]
        )

    def test_ping_after(self) -> None:
        """
        A ping after the common frames is answered by wsproto, and what
        comes after it is still read.
        """
        line = self.harness.connect()
        web = self.joined()
        line.take()
        web.events()
        web.send({"type": "say", "room": "lobby", "text": "before"})
        web.ping()
        web.events()
        self.assertEqual(web.pings, [b"hi"])
        web.send({"type": "say", "room": "lobby", "text": "after"})
        nick = web.session.nick
        self.assertEqual(
            line.take(), [f"[lobby] <{nick}> before", f"[lobby] <{nick}> after"]
        )
