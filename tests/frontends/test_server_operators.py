"""
Server operators in every front end, in memory: C{/oper} and the powers
on the line protocol, C{KILL}, C{WALLOPS}, C{KLINE}, C{UNKLINE}, C{STATS K}
and C{AUDIT} over IRC, the web requests; a banned address refused at
admission in each front end's words; an account ban at login; and every
power refused to everyone else with nothing changed.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from chatservice.core.accounts import Account, Accounts
from chatservice.frontends.limits import Limits
from tests.core.test_accounts import HASHER, PASSWORD, Hashing, Saves
from tests.support.memory import Connection, Harness
from tests.support.web import WebClient, web_front_end

SERVER = ":My.Little.Server"
NOPE = "!!! Only server operators may do that; see /oper."


def codes(lines: list[str]) -> list[str]:
    return [line.split(" ")[1] for line in lines if line.startswith(SERVER)]


class FrontEndsTestCase(SynchronousTestCase):
    """
    Line, IRC and web clients on one chat that keeps accounts; C{boss} is a
    server operator account, C{bob} an ordinary one.
    """

    def setUp(self) -> None:
        self.harness = Harness(
            Limits(flood_rate=0, max_per_ip=0),
            accounts=lambda chat, registered: Accounts(
                chat,
                in_thread=Hashing(),
                save=Saves(),
                clock=lambda: self.harness.clock.seconds(),
                accounts=registered,
                hasher=HASHER,
            ),
            operators=["boss"],
        )
        assert self.harness.accounts is not None
        for nick in ("boss", "bob"):
            self.harness.accounts.accounts[nick] = Account(nick, HASHER.hash(PASSWORD))
        self.site = web_front_end(self.harness)

    def oper(self) -> Connection:
        """A line client that is a server operator, its output taken."""
        boss = self.harness.connect(self.harness.address("10.9.9.9"))
        boss.say(f"/login boss {PASSWORD}")
        boss.say(f"/oper boss {PASSWORD}")
        self.assertIn("*** You are now a server operator.", boss.take())
        return boss

    def irc(self, nick: str, host: str = "10.0.0.5") -> Connection:
        client = self.harness.connect_irc(self.harness.address(host))
        client.send(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n")
        self.assertIn("001", codes(client.take()))
        return client

    def web(self, host: str = "10.0.0.6") -> WebClient:
        client = WebClient(self.harness, self.site, self.harness.address(host))
        client.events()
        return client


class LineTests(FrontEndsTestCase):
    def test_oper(self) -> None:
        (a,) = self.harness.clients(1)
        a.say(f"/oper bob {PASSWORD}")
        self.assertEqual(a.take(), ["!!! bob is not a server operator."])
        a.say("/oper boss")
        self.assertEqual(a.take(), ["!!! Usage: /oper NAME PASSWORD"])

    def test_kill(self) -> None:
        boss = self.oper()
        a, b = self.harness.clients(2)
        boss.say(f"/kill {a.nick} spamming")
        self.assertEqual(a.take(), ["!!! You were disconnected by boss (spamming)."])
        self.assertTrue(a.transport.disconnecting)
        self.assertEqual(
            b.take(), [f"[lobby] <-- {a.nick} quit (Killed (boss (spamming)))"]
        )
        self.assertIn(f"*** {a.nick} was disconnected (spamming).", boss.take())
        boss.say("/kill nobody")
        self.assertEqual(boss.take(), ["!!! No such nickname: nobody."])

    def test_wallEveryFrontEnd(self) -> None:
        """A notice to everyone reaches line, IRC and web clients alike."""
        boss = self.oper()
        irc = self.irc("ircuser")
        web = self.web()
        boss.say("/wall maintenance at noon")
        self.assertEqual(
            boss.take(), ["*** Notice to everyone from boss: maintenance at noon"]
        )
        self.assertEqual(
            irc.take(), [":boss!boss@chatservice NOTICE $* :maintenance at noon"]
        )
        self.assertEqual(
            [(e["type"], e["by"], e["text"]) for e in web.events()],
            [("server_notice", "boss", "maintenance at noon")],
        )

    def test_sban(self) -> None:
        """
        A ban by address disconnects who matches, with the reason; a new
        connection from there is refused in each front end's words; lifting
        it lets them back.
        """
        boss = self.oper()
        victim = self.harness.connect(self.harness.address("192.0.2.7"))
        bystander = self.harness.connect(self.harness.address("198.51.100.1"))
        victim.take()
        bystander.take()
        boss.say("/sban 192.0.2.0/24 2h spam bots")
        lines = boss.take()
        self.assertIn(
            "*** Server ban set: *!*@192.0.2.0/24 (until 1970-01-01 02:00:00; set by"
            " boss at 1970-01-01 00:00:00): spam bots; 1 member disconnected.",
            lines,
        )
        self.assertEqual(
            victim.take(), ["!!! You are banned from this server (spam bots)."]
        )
        self.assertTrue(victim.transport.disconnecting)
        self.assertIn(
            f"[lobby] <-- {victim.nick} quit (Banned (spam bots))", bystander.take()
        )
        # Refused at admission, in each front end's words.
        _, transport = self.harness.build(self.harness.address("192.0.2.8"))
        self.assertEqual(
            transport.value(), b"!!! You are banned from this server (spam bots).\r\n"
        )
        client = WebClient(self.harness, self.site, self.harness.address("192.0.2.9"))
        (refusal,) = client.events()
        self.assertEqual(
            (refusal["type"], refusal["code"], refusal["reason"]),
            ("error", "server_banned", "spam bots"),
        )
        self.assertEqual(self.harness.stats.refused["server ban"], 2)
        boss.say("/sbans")
        self.assertEqual(boss.take()[0], "*** 1 server ban(s):")
        boss.say("/unsban *@192.0.2.0/24")
        self.assertEqual(boss.take(), ["*** Server ban on *!*@192.0.2.0/24 lifted."])
        self.harness.connect(self.harness.address("192.0.2.8"))

    def test_sbanExpires(self) -> None:
        boss = self.oper()
        boss.say("/sban 192.0.2.7 30s")
        boss.take()
        _, transport = self.harness.build(self.harness.address("192.0.2.7"))
        self.assertIn(b"banned", transport.value())
        self.harness.advance(30)
        self.harness.connect(self.harness.address("192.0.2.7"))

    def test_sbanBadInput(self) -> None:
        boss = self.oper()
        for line, error in [
            ("/sban", "!!! Usage: /sban MASK [DURATION] [REASON]"),
            ("/sban bob", "!!! Invalid mask bob: a server ban is an address"),
            ("/sban bob!*@1.2.3.4", "!!! Invalid mask bob!*@1.2.3.4: a server ban"),
            ("/sban *@* spam", "!!! Invalid mask *@*: that matches every address."),
            ("/sban *@*c* spam", "!!! Invalid mask *@*c*: that matches every"),
            ("/sban 1.2.3.4 10x", "!!! Invalid duration 10x:"),
            ("/sban 1.2.3.4 0s", "!!! Invalid duration 0s:"),
            ("/sban 1.2.3.4 3661d", "!!! Invalid duration 3661d:"),
            ("/unsban 1.2.3.4", "!!! There is no server ban on *!*@1.2.3.4."),
            ("/audit 0", "!!! Usage: /audit [N]"),
            ("/audit 201", "!!! Usage: /audit [N]"),
            ("/audit x", "!!! Usage: /audit [N]"),
        ]:
            boss.say(line)
            (got,) = boss.take()
            self.assertTrue(got.startswith(error), (line, got))
        self.assertEqual(len(self.harness.chat.server_bans), 0)

    def test_sbanDuration(self) -> None:
        """
        The word after the mask is read as /ban reads it: a duration when
        it reads as one or starts like a number, else the reason's first.
        """
        boss = self.oper()
        boss.say("/sban 192.0.2.1 2h spam")
        boss.say("/sban 192.0.2.2 spam for 2h")
        boss.say("/sban 192.0.2.3 -5m spam")
        self.assertTrue(boss.take()[-1].startswith("!!! Invalid duration -5m:"))
        bans = {ban.mask: ban for ban in self.harness.chat.server_bans.entries()}
        self.assertEqual(sorted(bans), ["*!*@192.0.2.1", "*!*@192.0.2.2"])
        first, second = bans["*!*@192.0.2.1"], bans["*!*@192.0.2.2"]
        self.assertEqual((first.expires, first.reason), (first.at + 7200, "spam"))
        self.assertEqual((second.expires, second.reason), (None, "spam for 2h"))

    def test_unregisterOverruled(self) -> None:
        """
        A server operator may unregister a room it does not own; anyone
        else but its founder may not.
        """
        bob = self.harness.connect()
        bob.say(f"/login bob {PASSWORD}")
        bob.say("/join den")
        bob.say("/room register")
        other = self.harness.connect()
        other.say("/join den")
        boss = self.oper()
        boss.say("/join den")
        for client in (bob, other, boss):
            client.take()
        other.say("/room unregister")
        self.assertEqual(other.take(), ["!!! Only the founder of den may do that."])
        boss.say("/room unregister")
        line = "[den] --- boss unregistered the room"
        self.assertEqual((bob.take(), boss.take()), ([line], [line]))
        self.assertIsNone(self.harness.chat.room("den").founder)

    def test_sbanAccount(self) -> None:
        """An account ban disconnects at login, with the reason."""
        boss = self.oper()
        boss.say("/sban $a:bob forever being rude")
        boss.take()
        a = self.harness.connect()
        a.take()
        a.say(f"/login bob {PASSWORD}")
        self.assertEqual(
            a.take(), ["!!! You are banned from this server (being rude)."]
        )
        self.assertFalse(a.connected)

    def test_audit(self) -> None:
        boss = self.oper()
        (a,) = self.harness.clients(1)
        boss.say(f"/kill {a.nick} bye")
        boss.take()
        boss.say("/audit 1")
        self.assertEqual(
            boss.take(),
            [
                "*** Last 1 moderation action(s):",
                f"***   1970-01-01 00:00:00 boss kill {a.nick}: bye",
            ],
        )

    def test_nonOperators(self) -> None:
        """
        Every power is refused, in every front end, and nothing changes.
        """
        (a, b) = self.harness.clients(2)
        for line in [
            f"/kill {b.nick} x",
            "/wall hi",
            "/sban 10.0.0.0/8 1h x",
            "/sban garbage",
            "/unsban 1.2.3.4",
            "/sbans",
            "/audit",
            "/audit 5",
        ]:
            a.say(line)
            self.assertEqual(a.take(), [NOPE], line)
        irc = self.irc("mallory")
        for line in [
            f"KILL {b.nick} :x",
            "WALLOPS :hi",
            "KLINE 60 *@10.0.0.0/8 :x",
            "KLINE garbage",
            "UNKLINE 1.2.3.4",
            "STATS K",
            "AUDIT",
        ]:
            irc.send(line + "\r\n")
            self.assertEqual(codes(irc.take()), ["481"], line)
        web = self.web()
        for request in [
            {"type": "kill", "nick": b.nick},
            {"type": "wall", "text": "hi"},
            {"type": "server_ban", "mask": "10.0.0.0/8", "duration": "1h"},
            {"type": "server_unban", "mask": "1.2.3.4"},
            {"type": "server_bans"},
            {"type": "audit", "n": 5},
        ]:
            web.send({**request, "id": 1})
            (refused,) = web.events()
            self.assertEqual(refused["code"], "no_privileges", request)
        self.assertTrue(b.connected)
        self.assertEqual(b.take(), [])
        self.assertEqual(len(self.harness.chat.server_bans), 0)
        self.assertEqual(self.harness.chat.audit.recent(10), [])


class IRCTests(FrontEndsTestCase):
    def ircop(self) -> Connection:
        client = self.irc("ircop", "10.9.9.8")
        client.send(f"OPER boss {PASSWORD}\r\n")
        self.assertIn("381", codes(client.take()))
        return client

    def test_kill(self) -> None:
        ircop = self.ircop()
        alice = self.irc("alice")
        bob = self.irc("carol")
        for each in (ircop, alice, bob):
            each.send("JOIN #room\r\n")
        for each in (ircop, alice, bob):
            each.take()
        ircop.send("KILL alice :some reason\r\n")
        self.assertEqual(
            alice.take(), ["ERROR :Closing link: alice (Killed (ircop (some reason)))"]
        )
        self.assertTrue(alice.transport.disconnecting)
        self.assertEqual(
            bob.take(),
            [":alice!alice@chatservice QUIT :Quit: Killed (ircop (some reason))"],
        )
        ircop.send("KILL carol\r\n")
        self.assertTrue(bob.transport.disconnecting)
        ircop.take()
        ircop.send("KILL nobody :x\r\nKILL\r\n")
        self.assertEqual(codes(ircop.take()), ["401", "461"])

    def test_wallops(self) -> None:
        ircop = self.ircop()
        line = self.harness.connect()
        line.take()
        ircop.send("WALLOPS :hi everyone\r\n")
        self.assertEqual(
            ircop.take(), [":ircop!ircop@chatservice NOTICE $* :hi everyone"]
        )
        self.assertEqual(
            line.take(), ["*** Notice to everyone from ircop: hi everyone"]
        )

    def test_kline(self) -> None:
        """
        KLINE with minutes or our durations, STATS K, UNKLINE; a K-lined
        client is told 465 then ERROR, and one connecting is refused so.
        """
        ircop = self.ircop()
        victim = self.irc("victim", "203.0.113.5")
        ircop.send("KLINE 10 *@203.0.113.0/24 :go away\r\n")
        (added,) = ircop.take()
        self.assertIn("NOTICE ircop :Added K-line on *!*@203.0.113.0/24 (until", added)
        self.assertEqual(
            victim.take(),
            [
                f"{SERVER} 465 victim :You are banned from this server (go away)",
                "ERROR :Closing link: victim (You are banned from this server"
                " (go away))",
            ],
        )
        self.assertEqual(
            self.harness.chat.server_bans.entries()[0].expires,
            self.harness.clock.seconds() + 600,
        )
        refused = self.harness.irc
        assert refused is not None
        proto = refused.buildProtocol(self.harness.address("203.0.113.9"))
        assert proto is not None
        from twisted.internet.testing import StringTransport

        transport = StringTransport()
        proto.makeConnection(transport)
        self.assertEqual(
            transport.value().decode().split("\r\n")[:2],
            [
                f"{SERVER} 465 * :You are banned from this server (go away)",
                "ERROR :Closing link: * (You are banned from this server (go away))",
            ],
        )
        ircop.send("KLINE 2h $a:bob\r\nKLINE forever 1.2.3.4 :x\r\nSTATS K\r\n")
        lines = ircop.take()
        self.assertEqual(codes(lines)[-4:], ["216", "216", "216", "219"])
        self.assertIn(f"{SERVER} 216 ircop K $a:bob * * :no reason (set by", lines[-3])
        ircop.send("UNKLINE $a:BOB\r\nUNKLINE $a:bob\r\nKLINE\r\nKLINE 5 bob\r\n")
        lines = ircop.take()
        self.assertEqual(lines[0], f"{SERVER} NOTICE ircop :Removed K-line on $a:bob")
        self.assertIn("No K-line on $a:bob", lines[1])
        self.assertEqual(codes(lines[2:3]), ["461"])
        self.assertIn("bob is not a mask: a server ban is", lines[3])
        ircop.send("STATS m\r\nSTATS\r\n")
        self.assertEqual(codes(ircop.take()), ["219", "461"])

    def test_accountBanAtRegistration(self) -> None:
        """An IRC client logging in as a banned account with PASS is refused."""
        ircop = self.ircop()
        ircop.send("KLINE $a:bob :nope\r\n")
        ircop.take()
        client = self.harness.connect_irc()
        client.send(f"PASS {PASSWORD}\r\nNICK bob\r\nUSER b 0 * :Bob\r\n")
        self.assertEqual(
            client.take(),
            [
                f"{SERVER} 465 * :You are banned from this server (nope)",
                "ERROR :Closing link: * (You are banned from this server (nope))",
            ],
        )
        self.assertIsNone(client.proto.member)
        self.assertTrue(client.transport.disconnecting)

    def test_audit(self) -> None:
        ircop = self.ircop()
        ircop.send("WALLOPS :one\r\nAUDIT 2\r\nAUDIT 0\r\n")
        lines = ircop.take()
        self.assertEqual(
            lines[1:],
            [
                f"{SERVER} NOTICE ircop :Audit: last 2 action(s)",
                f"{SERVER} NOTICE ircop :Audit: 1970-01-01 00:00:00 ircop (boss) oper",
                f"{SERVER} NOTICE ircop :Audit: 1970-01-01 00:00:00 ircop (boss)"
                " wall: one",
                f"{SERVER} NOTICE ircop :Audit: end",
                f"{SERVER} 461 ircop AUDIT :n is 1 to 200",
            ],
        )


class WebTests(FrontEndsTestCase):
    def request(self, client: WebClient, **request: Any) -> list[dict[str, Any]]:
        client.send({**request, "id": "r"})
        return client.events()

    def test_powers(self) -> None:
        web = self.web()
        self.assertEqual(
            [
                e["type"]
                for e in self.request(web, type="oper", name="boss", password=PASSWORD)
            ],
            ["server_operator_up", "ok"],
        )
        (target,) = self.harness.clients(1)
        (added, _) = self.request(
            web, type="server_ban", mask="$a:spam*", duration="7d", reason="spam"
        )
        self.assertEqual(added["type"], "server_ban_added")
        self.assertEqual(added["entry"]["mask"], "$a:spam*")
        self.assertEqual(added["entry"]["expires"], 7 * 86400)
        (bans, _) = self.request(web, type="server_bans")
        self.assertEqual((bans["type"], bans["total"]), ("server_ban_list", 1))
        (bad,) = self.request(web, type="server_ban", mask="1.2.3.4", duration="soon")
        self.assertEqual((bad["code"], bad["duration"]), ("bad_duration", "soon"))
        (bad,) = self.request(web, type="server_ban", mask="1.2.3.4", duration=-5)
        self.assertEqual(bad["code"], "bad_duration")
        (bad,) = self.request(web, type="server_ban", mask="*@*")
        self.assertEqual((bad["code"], bad["mask"]), ("bad_mask", "*@*"))
        (bad,) = self.request(web, type="audit", n=500)
        self.assertEqual((bad["code"], bad["field"]), ("bad_field", "n"))
        (killed, _) = self.request(web, type="kill", nick=target.nick, reason="bye")
        self.assertEqual(
            killed, {"type": "kill_done", "nick": target.nick, "reason": "bye"}
        )
        self.assertEqual(
            target.take(), ["!!! You were disconnected by " + web_nick(web) + " (bye)."]
        )
        (log, _) = self.request(web, type="audit", n=2)
        self.assertEqual([e["action"] for e in log["entries"]], ["server-ban", "kill"])
        (unbanned, _) = self.request(web, type="server_unban", mask="$a:spam*")
        self.assertEqual(unbanned, {"type": "server_ban_removed", "mask": "$a:spam*"})

    def test_unregisterOverruled(self) -> None:
        """A server operator on the web may unregister a room it does not own."""
        bob = self.harness.connect()
        bob.say(f"/login bob {PASSWORD}")
        bob.say("/join den")
        bob.say("/room register")
        web = self.web()
        (refused,) = self.request(web, type="unregister_room", room="den")
        self.assertEqual(refused["code"], "not_founder")
        self.request(web, type="oper", name="boss", password=PASSWORD)
        bob.take()
        (done,) = self.request(web, type="unregister_room", room="den")
        self.assertEqual(done["type"], "ok")
        self.assertIsNone(self.harness.chat.room("den").founder)
        self.assertEqual(
            bob.take(), [f"[den] --- {web_nick(web)} unregistered the room"]
        )

    def test_killedWebClient(self) -> None:
        boss = self.oper()
        web = self.web()
        nick = web_nick(web)
        boss.say(f"/kill {nick} go")
        (killed,) = web.events()
        self.assertEqual(killed, {"type": "killed", "by": "boss", "reason": "go"})
        self.assertIsNotNone(web.close_code)


def web_nick(client: WebClient) -> str:
    member = client.session.member
    assert member is not None
    return member.nick
