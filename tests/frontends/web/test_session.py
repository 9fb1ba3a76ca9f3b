"""
Tests for L{chatservice.frontends.web.session}, in memory: the real site,
handshake and wsproto framing on a L{StringTransport}, on a fake clock, in
the same chat as line clients.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from chatservice.core.history import History
from chatservice.frontends.limits import Limits
from chatservice.frontends.web import requests
from tests.support.memory import Harness
from tests.support.web import WebClient, web_front_end


class WebTestCase(SynchronousTestCase):
    limits = Limits()

    def setUp(self) -> None:
        self.harness = Harness(
            self.limits, history=lambda clock: History(clock=clock.seconds)
        )
        self.site = web_front_end(self.harness)

    def client(self, **kwargs: Any) -> WebClient:
        client = WebClient(self.harness, self.site, **kwargs)
        self.addCleanup(lambda: None if client.closing else client.lost())
        return client

    def joined(self, room: str = "lobby") -> WebClient:
        client = self.client()
        client.request({"type": "join", "room": room})
        return client


class ConnectTests(WebTestCase):
    def test_welcome(self) -> None:
        """
        A web client is accepted, and welcomed under a guest nickname, in
        no room.
        """
        client = self.client()
        (welcome,) = client.events()
        self.assertTrue(client.accepted)
        self.assertEqual(welcome["type"], "welcome")
        self.assertTrue(welcome["nick"].startswith("guest"))
        self.assertIsNone(welcome["room"])
        self.assertEqual(self.harness.admission.connections, 1)

    def test_lost(self) -> None:
        """A lost connection leaves the chat and frees its slot."""
        client = self.client()
        nick = client.events()[0]["nick"]
        client.lost()
        self.assertNotIn(nick, self.harness.chat.members)
        self.assertEqual(self.harness.admission.connections, 0)


class RequestTests(WebTestCase):
    def test_joinAnswered(self) -> None:
        """
        A join tells the room entered, who is there, and then the answer
        carrying the request's id.
        """
        client = self.client()
        client.events()
        found = client.request({"type": "join", "room": "dev", "id": "j1"})
        self.assertEqual([e["type"] for e in found], ["entered", "names", "ok"])
        self.assertEqual(found[0]["room"], "dev")
        self.assertEqual(found[2], {"type": "ok", "id": "j1"})

    def test_noIdNoAnswer(self) -> None:
        client = self.client()
        client.events()
        found = client.request({"type": "join", "room": "dev"})
        self.assertEqual([e["type"] for e in found], ["entered", "names"])

    def test_webAndLine(self) -> None:
        """
        A web user and a line user in one room see each other's lines,
        each in its own protocol.
        """
        line = self.harness.connect()
        line.take()
        web = self.joined()
        self.assertEqual(line.take(), [f"[lobby] --> {web.session.nick} joined"])
        web.send({"type": "say", "room": "lobby", "text": "hello <b>line</b>"})
        self.assertEqual(
            line.take(), [f"[lobby] <{web.session.nick}> hello <b>line</b>"]
        )
        line.say("hello web")
        (said,) = web.events()
        self.assertEqual(
            {k: said[k] for k in ("type", "room", "nick", "text")},
            {"type": "said", "room": "lobby", "nick": line.nick, "text": "hello web"},
        )
        self.assertIsInstance(said["time"], float)
        web.send({"type": "me", "room": "lobby", "text": "waves"})
        self.assertEqual(line.take(), [f"[lobby] * {web.session.nick} waves"])

    def test_private(self) -> None:
        line = self.harness.connect()
        line.take()
        web = self.client()
        web.events()
        web.send({"type": "msg", "nick": line.nick, "text": "psst", "id": 2})
        self.assertEqual(web.events(), [{"type": "ok", "id": 2}])
        self.assertEqual(line.take(), [f"*{web.session.nick}* psst"])
        line.lines(f"/msg {web.session.nick} back")
        (private,) = web.events()
        self.assertEqual(private["sender"], line.nick)
        self.assertEqual(private["text"], "back")

    def test_nick(self) -> None:
        web = self.client()
        web.events()
        found = web.request({"type": "nick", "nick": "ann", "id": 1})
        self.assertEqual(
            found[0], {"type": "nick_changed", "nick": "ann", "old": found[0]["old"]}
        )
        taken = self.client()
        taken.events()
        found = taken.request({"type": "nick", "nick": "ANN", "id": 2})
        self.assertEqual(
            found, [{"type": "error", "code": "nick_taken", "nick": "ANN", "id": 2}]
        )

    def test_part(self) -> None:
        """The leaver sees its own leaving, as the room does."""
        other = self.joined()
        web = self.joined()
        other.events()
        found = web.request({"type": "part", "room": "lobby", "reason": "bye", "id": 3})
        self.assertEqual([e["type"] for e in found], ["left", "ok"])
        self.assertEqual(found[0]["nick"], web.session.nick)
        (left,) = other.events()
        self.assertEqual((left["type"], left["reason"]), ("left", "bye"))

    def test_historyAndRooms(self) -> None:
        web = self.joined()
        line = self.harness.connect()
        line.say("one")
        web.events()
        found = web.request({"type": "history", "room": "lobby", "n": 5})
        self.assertEqual(found[0]["type"], "replay")
        self.assertEqual([line["text"] for line in found[0]["lines"]], ["one"])
        empty = self.joined("quiet")
        self.assertEqual(
            empty.request({"type": "history", "room": "quiet"}),
            [{"type": "replay", "room": "quiet", "lines": [], "before": None}],
        )
        (rooms,) = web.request({"type": "rooms"})
        self.assertEqual(rooms["rooms"][0], {"room": "lobby", "count": 2})

    def test_notInRoom(self) -> None:
        web = self.client()
        web.events()
        found = web.request({"type": "say", "room": "nowhere", "text": "x", "id": 9})
        self.assertEqual(
            found,
            [{"type": "error", "code": "not_in_room", "room": "nowhere", "id": 9}],
        )

    def test_noAccounts(self) -> None:
        web = self.client()
        web.events()
        found = web.request({"type": "register", "password": "secret123", "id": "r"})
        self.assertEqual(found, [{"type": "error", "code": "no_accounts", "id": "r"}])

    def test_quit(self) -> None:
        """A quit says goodbye and closes normally."""
        web = self.joined()
        found = web.request({"type": "quit", "message": "later"})
        self.assertEqual([e["type"] for e in found], ["goodbye"])
        self.assertEqual(web.close_code, 1000)
        self.assertTrue(web.closing)

    def test_sharedFrames(self) -> None:
        """
        A room's line is rendered once for all web members: every one is
        handed the very same bytes.
        """
        webs = [self.joined() for _ in range(3)]
        delivered: list[bytes] = []
        for web in webs:
            web.events()
            session = web.session
            deliver = session.deliver

            def spy(data: bytes, deliver: Any = deliver) -> None:
                delivered.append(data)
                deliver(data)

            session.deliver = spy  # type: ignore[method-assign]
        line = self.harness.connect()
        line.say("to all")
        said = [d for d in delivered if b"to all" in d]
        self.assertEqual(len(said), 3)
        self.assertTrue(all(d is said[0] for d in said))


class BadInputTests(WebTestCase):
    """
    Every kind of bad input gets a typed error, and the connection goes on.
    """

    limits = Limits(max_line=200)

    def assertRefused(
        self, message: Any, error: dict[str, Any], binary: bool = False
    ) -> None:
        web = self.client()
        web.events()
        if binary:
            web.send_bytes(message)
        else:
            web.send(message)
        self.assertEqual(web.events(), [{"type": "error", **error}])
        self.assertEqual(
            web.request({"type": "ping", "id": 1}), [{"type": "ok", "id": 1}]
        )
        self.assertFalse(web.closing)

    def test_invalidJSON(self) -> None:
        self.assertRefused(
            "{nope",
            {
                "code": "invalid_json",
                "reason": "Expecting property name enclosed in double quotes",
            },
        )

    def test_deepJSON(self) -> None:
        """JSON nested past the parser's recursion limit is invalid JSON."""
        with self.assertRaises(requests.Invalid) as caught:
            requests.parse(b"[" * 100_000 + b"]" * 100_000)
        self.assertEqual(caught.exception.error.code, "invalid_json")

    def test_notAnObject(self) -> None:
        self.assertRefused(
            "[1, 2]", {"code": "invalid_json", "reason": "not an object"}
        )

    def test_noType(self) -> None:
        self.assertRefused(
            {"id": 4},
            {"code": "bad_field", "field": "type", "expected": "a string", "id": 4},
        )

    def test_unknownType(self) -> None:
        self.assertRefused(
            {"type": "fly", "id": "x"},
            {"code": "unknown_type", "given": "fly", "id": "x"},
        )

    def test_wrongFieldType(self) -> None:
        self.assertRefused(
            {"type": "say", "room": "lobby", "text": 5},
            {"code": "bad_field", "field": "text", "expected": "a non-empty string"},
        )

    def test_missingField(self) -> None:
        self.assertRefused(
            {"type": "join"},
            {"code": "bad_field", "field": "room", "expected": "a non-empty string"},
        )

    def test_boolIsNoNumber(self) -> None:
        self.assertRefused(
            {"type": "history", "room": "lobby", "n": True},
            {"code": "bad_field", "field": "n", "expected": "an integer"},
        )

    def test_badId(self) -> None:
        self.assertRefused(
            {"type": "ping", "id": [1]},
            {
                "code": "bad_field",
                "field": "id",
                "expected": "a string of at most 64 or an integer",
            },
        )

    def test_binary(self) -> None:
        self.assertRefused(b"\x00\x01", {"code": "binary_message"}, binary=True)

    def test_tooLong(self) -> None:
        text = "x" * 300
        self.assertRefused(
            {"type": "say", "room": "lobby", "text": text},
            {"code": "line_too_long", "limit": 200},
        )

    def test_tooLongInPieces(self) -> None:
        """
        A message sent in fragments over many reads is not kept whole once
        it is too long: its end is refused, and the connection goes on.
        """
        from wsproto.events import TextMessage

        web = self.client()
        web.events()
        wire = web.session._ws
        for _ in range(50):
            web.feed(web.ws.send(TextMessage("x" * 100, message_finished=False)))
            self.assertLessEqual(len(wire._textBuffer.data), 300)  # type: ignore[union-attr]
        web.feed(web.ws.send(TextMessage("end", message_finished=True)))
        self.assertEqual(
            web.events(), [{"type": "error", "code": "line_too_long", "limit": 200}]
        )
        self.assertEqual(
            web.request({"type": "ping", "id": 1}), [{"type": "ok", "id": 1}]
        )

    def test_surrogate(self) -> None:
        """A lone surrogate escaped in JSON becomes a replacement, not a crash."""
        line = self.harness.connect()
        line.take()
        web = self.joined()
        line.take()
        web.send('{"type": "say", "room": "lobby", "text": "a\\ud800b"}')
        self.assertEqual(line.take(), [f"[lobby] <{web.session.nick}> a?b"])

    def test_saySpellings(self) -> None:
        """
        A say request reads the same however it is spelled: compact (read
        without building a dict), spaced, its fields in another order, with
        escapes; one with an id, another field or trailing bytes is not
        taken as a plain say.
        """
        line = self.harness.connect()
        line.take()
        web = self.joined()
        line.take()
        nick = web.session.nick
        for raw, text in [
            ('{"type":"say","room":"lobby","text":"plain"}', "plain"),
            ('{"type":"say","room":"lobby","text":"q\\"\\\\\\u00fc"}', 'q"\\ü'),
            ('{"type":"say","room":"lob\\u0062y","text":"esc"}', "esc"),
            ('{"type": "say", "room": "lobby", "text": "spaced"}', "spaced"),
            ('{"type":"say","text":"reordered","room":"lobby"}', "reordered"),
            ('{"type":"say","room":"lobby","text":"\\ud83d\\ude00"}', "😀"),
        ]:
            web.send(raw)
            self.assertEqual(line.take(), [f"[lobby] <{nick}> {text}"], raw)
            self.assertEqual(web.events(), [], raw)
        web.send('{"type":"say","room":"lobby","text":"id","id":7}')
        self.assertEqual(line.take(), [f"[lobby] <{nick}> id"])
        self.assertEqual(web.events(), [{"type": "ok", "id": 7}])
        web.send('{"type":"say","room":"lobby","text":"x"}x')
        self.assertEqual(line.take(), [])
        self.assertEqual(web.events()[0]["code"], "invalid_json")
        web.send('{"type":"say","room":"lobby","text":" "}')
        self.assertEqual(line.take(), [])
        self.assertEqual(web.events()[0]["code"], "bad_field")
        web.send('{"type":"say","room":"lobby","text":"a\x01"}')
        self.assertEqual(line.take(), [])
        self.assertEqual(web.events()[0]["code"], "invalid_json")


class LimitTests(WebTestCase):
    """The limits every front end shares, on web clients, on a fake clock."""

    limits = Limits(
        flood_rate=1.0,
        flood_burst=3,
        flood_queue=5,
        sendq=2000,
        max_clients=4,
        max_per_ip=2,
        idle_timeout=60.0,
    )

    def test_floodHeldThenReleased(self) -> None:
        """
        Messages past the burst are held and carried out as tokens come
        back, in order.
        """
        web = self.client()
        web.events()
        for n in range(5):
            web.send({"type": "ping", "id": n})
        self.assertEqual([e["id"] for e in web.events()], [0, 1, 2])
        self.harness.advance(1)
        self.assertEqual([e["id"] for e in web.events()], [3])
        self.harness.advance(1)
        self.assertEqual([e["id"] for e in web.events()], [4])

    def test_excessFlood(self) -> None:
        """Past the flood queue, the client is told and closed (policy)."""
        web = self.client()
        web.events()
        for n in range(10):
            web.send({"type": "ping", "id": n})
        found = web.events()
        self.assertEqual(found[-1]["code"], "excess_flood")
        self.assertEqual(web.close_code, 1008)
        self.assertTrue(web.closing)

    def test_idleTimeout(self) -> None:
        web = self.client()
        web.events()
        self.harness.advance(59)
        web.send({"type": "ping"})
        self.harness.advance(59)
        self.assertFalse(web.closing)
        self.harness.advance(2)
        self.assertEqual(
            web.events(), [{"type": "error", "code": "idle_timeout", "seconds": 60.0}]
        )
        self.assertEqual(web.close_code, 1008)

    def test_pingKeepsAlive(self) -> None:
        """A WebSocket ping is input: it keeps the connection from idling."""
        web = self.client()
        web.events()
        self.harness.advance(59)
        web.ping()
        self.harness.advance(59)
        self.assertFalse(web.closing)

    def test_sendq(self) -> None:
        """A client that does not read is cut once its sendq is full."""
        web = self.joined()
        web.transport.producer.pauseProducing()
        line = self.harness.connect()
        for n in range(40):
            line.say(f"line {n} " + "x" * 50)
            self.harness.settle(1)
        self.assertTrue(web.transport.disconnected)
        self.assertEqual(self.harness.stats.sendq_disconnects, 1)

    def test_maxPerIp(self) -> None:
        """
        Web users count against --max-per-ip with everyone else: the third
        from one address is told why, and closed with "try again later".
        """
        address = self.harness.address("10.9.9.9")
        self.harness.connect(self.harness.address("10.9.9.9"))
        self.client(address=address)
        refused = WebClient(
            self.harness, self.site, address=self.harness.address("10.9.9.9")
        )
        self.assertEqual(
            refused.events(),
            [{"type": "error", "code": "too_many_from_address", "limit": 2}],
        )
        self.assertEqual(refused.close_code, 1013)
        self.assertEqual(self.harness.admission.connections, 2)

    def test_maxClients(self) -> None:
        for n in range(4):
            self.client(address=self.harness.address(f"10.0.1.{n}"))
        refused = WebClient(self.harness, self.site)
        self.assertEqual(
            refused.events(), [{"type": "error", "code": "server_full", "limit": 4}]
        )

    def test_shutdown(self) -> None:
        """
        A graceful stop tells web users and closes with "going away"; the
        stop is done when they have gone.
        """
        web = self.joined()
        done = self.harness.shut_down(5)
        self.assertEqual(web.types(), ["closing"])
        self.assertEqual(web.close_code, 1001)
        self.assertNoResult(done)
        web.lost()
        self.successResultOf(done)


class OriginTests(WebTestCase):
    def test_sameHost(self) -> None:
        web = self.client(origin="http://chat.example:8080")
        self.assertEqual(web.types(), ["welcome"])

    def test_otherSite(self) -> None:
        """
        A page on another site is refused before the handshake, and never
        admitted.
        """
        web = self.client(origin="https://evil.example")
        self.assertEqual(web.events(), [])
        self.assertEqual(web.status, 403)
        self.assertEqual(self.harness.admission.connections, 0)

    def test_otherPort(self) -> None:
        web = self.client(origin="http://chat.example:9090")
        web.events()
        self.assertEqual(web.status, 403)

    def test_listed(self) -> None:
        """With --web-origin, only the origins listed are let in."""
        self.site = web_front_end(self.harness, ("https://chat.example.org",))
        web = self.client(origin="HTTPS://Chat.Example.org")
        self.assertEqual(web.types(), ["welcome"])
        same = self.client(origin="http://chat.example:8080")
        same.events()
        self.assertEqual(same.status, 403)

    def test_noOrigin(self) -> None:
        """A client that is no browser sends no Origin, and is let in."""
        self.assertEqual(self.client().types(), ["welcome"])
