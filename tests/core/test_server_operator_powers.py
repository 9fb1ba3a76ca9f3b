"""
What server operators may do (L{ServerOperators.kill}, C{wall}, C{ban},
C{unban}, C{bans}, C{audit}), what everyone else is refused, and how the
operator list changes under a member.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from chatservice.core import errors, events
from chatservice.core.accounts import Account, Accounts
from chatservice.core.audit import Audit
from chatservice.core.chat import Chat
from chatservice.core.rooms import Member
from chatservice.core.server_bans import ServerBan, ServerBans
from chatservice.core.server_operators import AUDIT_MAX, ServerOperators
from tests.core.test_accounts import HASHER, PASSWORD, Hashing, Saves
from tests.core.test_chat import ChatTestCase, EventRenderer, EventSession


class AddressedSession(EventSession):
    """A session from an IP address, as the front ends' are."""

    def __init__(self, renderer: EventRenderer, address: str) -> None:
        super().__init__(renderer)
        self.address = address


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class PowersTestCase(ChatTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.chat = Chat(
            schedule=self.turns,
            audit=Audit(self.clock),
            server_bans=ServerBans(self.clock),
        )
        self.hashing = Hashing()
        self.accounts = Accounts(
            self.chat,
            in_thread=self.hashing,
            save=Saves(),
            clock=self.clock,
            hasher=HASHER,
        )
        for nick in ("Boss", "bob", "Chief"):
            self.accounts.accounts[nick.lower()] = Account(nick, HASHER.hash(PASSWORD))
        self.operators = ServerOperators(
            self.chat, self.accounts, ["boss"], listed=["chief"]
        )
        self.boss = self.connect("boss", "10.0.0.1")
        self.oper(self.boss, "Boss")
        self.alice = self.connect("alice", "10.0.0.2")
        self.bob = self.connect("bob", "192.168.1.7")
        for member in (self.boss, self.alice, self.bob):
            self.chat.join(member, "lobby")
        for member in (self.boss, self.alice, self.bob):
            self.take(member)

    def connect(self, nick: str, address: str = "") -> Member:
        session = AddressedSession(self.renderer, address)
        member = self.chat.connect(session, nick)
        self.sessions[member] = session
        return member

    def oper(self, member: Member, name: str) -> None:
        self.successResultOf(
            Deferred.fromCoroutine(self.operators.oper(member, name, PASSWORD))
        )

    def assertBanned(self, member: Member, reason: str) -> None:
        """C{member} was told it is banned for C{reason}, and nothing else."""
        (told,) = self.take(member)
        assert isinstance(told, events.Refused)
        assert isinstance(told.error, errors.ServerBanned)
        self.assertEqual(told.error.reason, reason)

    def closed(self, member: Member) -> bool:
        session = self.sessions[member]
        assert isinstance(session, EventSession)
        return session.closed


class RefusedTests(PowersTestCase):
    def test_nonOperators(self) -> None:
        """
        Every power is refused to a member that is not a server operator,
        and nothing changes: nobody is told anything, nothing is audited.
        """
        before = self.chat.audit.recent(100)
        attempts = [
            lambda: self.operators.kill(self.alice, "bob", "bye"),
            lambda: self.operators.kill(self.alice, "alice", "bye"),
            lambda: self.operators.wall(self.alice, "hello"),
            lambda: self.operators.ban(self.alice, "192.168.1.7", None, "x"),
            lambda: self.operators.ban(self.alice, "garbage", -5, "x"),
            lambda: self.operators.unban(self.alice, "192.168.1.7"),
            lambda: self.operators.bans(self.alice),
            lambda: self.operators.audit(self.alice, 5),
        ]
        for attempt in attempts:
            self.assertRaises(errors.NoPrivileges, attempt)
        self.assertTrue(self.bob.connected)
        self.assertEqual(len(self.chat.server_bans), 0)
        self.assertEqual(self.chat.audit.recent(100), before)
        for member in (self.boss, self.alice, self.bob):
            self.assertEqual(self.take(member), [])


class KillTests(PowersTestCase):
    def test_kill(self) -> None:
        """
        The one killed is told by whom and why and disconnected; its rooms
        see it quit as IRC shows kills; the killer is told; it is audited.
        """
        self.operators.kill(self.boss, "BOB", "flooding")
        self.assertFalse(self.bob.connected)
        self.assertTrue(self.closed(self.bob))
        self.assertEqual(self.take(self.bob), [events.Killed("boss", "flooding")])
        self.assertEqual(
            self.take(self.alice),
            [events.Quit("lobby", "bob", "Killed (boss (flooding))")],
        )
        self.assertEqual(
            self.take(self.boss),
            [
                events.KillDone("bob", "flooding"),
                events.Quit("lobby", "bob", "Killed (boss (flooding))"),
            ],
        )
        (entry,) = self.chat.audit.recent(1)
        self.assertEqual(
            (entry.actor, entry.action, entry.target, entry.detail, entry.time),
            ("boss", "kill", "bob", "flooding", 1000.0),
        )

    def test_noReason(self) -> None:
        self.operators.kill(self.boss, "bob")
        self.assertEqual(
            self.take(self.bob), [events.Killed("boss", "no reason given")]
        )

    def test_noSuchNick(self) -> None:
        self.assertRaises(
            errors.NoSuchNick, self.operators.kill, self.boss, "nobody", "x"
        )

    def test_self(self) -> None:
        """An operator may kill itself; it is told once, as the one killed."""
        self.operators.kill(self.boss, "boss", "testing")
        self.assertEqual(self.take(self.boss), [events.Killed("boss", "testing")])


class WallTests(PowersTestCase):
    def test_wall(self) -> None:
        """
        Everyone connected, in a room or not, the sender too, is told,
        rendered once per renderer; it is audited.
        """
        loner = self.connect("loner")
        self.take(loner)
        rendered = len(self.renderer.rendered)
        told = self.operators.wall(self.boss, "restart at noon\x1b[31m")
        self.assertEqual(told, 4)
        self.assertEqual(len(self.renderer.rendered), rendered + 1)
        notice = events.ServerNotice("boss", "restart at noon")
        for member in (self.boss, self.alice, self.bob, loner):
            self.assertEqual(self.take(member), [notice])
        (entry,) = self.chat.audit.recent(1)
        self.assertEqual((entry.action, entry.detail), ("wall", notice.text))

    def test_afterRoomLines(self) -> None:
        """What was said before the notice reaches everyone before it."""
        self.chat.say(self.alice, self.chat.room("lobby"), "first")
        self.operators.wall(self.boss, "second")
        self.assertEqual(
            self.take(self.bob),
            [
                events.Said("lobby", "alice", "first"),
                events.ServerNotice("boss", "second"),
            ],
        )

    def test_empty(self) -> None:
        self.assertRaises(errors.NoText, self.operators.wall, self.boss, "\x1b\x07")
        self.assertEqual(self.take(self.alice), [])


class BanTests(PowersTestCase):
    def test_addressBan(self) -> None:
        """
        An address ban disconnects the members it matches, telling them and
        their rooms why; the operator is told the ban and how many went.
        """
        entry = self.operators.ban(self.boss, "192.168.0.0/16", 3600, "spam")
        self.assertEqual(
            entry, ServerBan("*!*@192.168.0.0/16", "boss", 1000.0, 4600.0, "spam")
        )
        self.assertFalse(self.bob.connected)
        self.assertTrue(self.alice.connected)
        self.assertBanned(self.bob, "spam")
        self.assertEqual(
            self.take(self.alice), [events.Quit("lobby", "bob", "Banned (spam)")]
        )
        self.assertEqual(
            self.take(self.boss),
            [
                events.ServerBanAdded(entry, 1),
                events.Quit("lobby", "bob", "Banned (spam)"),
            ],
        )
        self.assertEqual(self.chat.server_bans.address_ban("192.168.3.3"), entry)
        (audit,) = self.chat.audit.recent(1)
        self.assertEqual(
            (audit.action, audit.target, audit.detail),
            ("server-ban", "*!*@192.168.0.0/16", "spam (for 3600 s)"),
        )

    def test_accountBan(self) -> None:
        """
        An account ban disconnects a member logged in as it, whatever its
        nickname; then logging in as it disconnects, and connecting with it
        is refused.
        """
        self.chat.log_in(self.alice, "bob", take_name=False)
        self.take(self.alice)
        self.operators.ban(self.boss, "$a:BOB", None, "")
        self.assertFalse(self.alice.connected)
        self.assertTrue(self.bob.connected)
        self.assertBanned(self.alice, "")
        self.take(self.bob)
        self.chat.log_in(self.bob, "bob")
        self.assertFalse(self.bob.connected)
        self.assertBanned(self.bob, "")
        self.assertRaises(
            errors.ServerBanned,
            self.chat.connect,
            EventSession(self.renderer),
            "robert",
            "bob",
        )
        self.assertRaises(
            errors.ServerBanned,
            self.chat.connect_as,
            EventSession(self.renderer),
            "bob",
        )
        self.assertNotIn("robert", self.chat.members)

    def test_operatorsStay(self) -> None:
        """A ban does not disconnect a server operator: it may lift it."""
        self.operators.ban(self.boss, "10.0.0.0/8", None, "oops")
        self.assertTrue(self.boss.connected)
        self.assertFalse(self.alice.connected)

    def test_expiry(self) -> None:
        """An expired ban stops refusing, and leaves the list."""
        self.operators.ban(self.boss, "$a:bob", 60, "cool down")
        self.clock.now = 1059
        self.assertRaises(
            errors.ServerBanned,
            self.chat.connect,
            EventSession(self.renderer),
            "robert",
            "bob",
        )
        self.clock.now = 1060
        member = self.chat.connect(EventSession(self.renderer), "robert", "bob")
        self.assertEqual(member.account, "bob")
        self.take(self.boss)
        self.operators.bans(self.boss)
        self.assertEqual(self.take(self.boss), [events.ServerBanList([], 0)])

    def test_badInput(self) -> None:
        """Malformed masks and durations are refused, and nothing is banned."""
        for mask, duration in [
            ("bob", None),
            ("*@*", None),
            ("$a:", None),
            ("1.2.3.4", 0),
            ("1.2.3.4", -60),
            ("1.2.3.4", 11 * 365 * 86400),
        ]:
            self.assertRaises(
                (errors.BadMask, errors.BadDuration),
                self.operators.ban,
                self.boss,
                mask,
                duration,
                "",
            )
        self.assertEqual(len(self.chat.server_bans), 0)
        self.assertEqual(self.take(self.boss), [])

    def test_full(self) -> None:
        self.chat.server_bans.limit = 2
        self.operators.ban(self.boss, "1.1.1.1", None, "")
        self.operators.ban(self.boss, "1.1.1.2", None, "")
        self.assertRaises(
            errors.ServerBansFull, self.operators.ban, self.boss, "1.1.1.3", None, ""
        )

    def test_unbanAndList(self) -> None:
        first = self.operators.ban(self.boss, "1.1.1.1", None, "a")
        second = self.operators.ban(self.boss, "$a:mallory", 60, "b")
        self.take(self.boss)
        self.operators.bans(self.boss)
        self.assertEqual(
            self.take(self.boss), [events.ServerBanList([first, second], 2)]
        )
        self.operators.unban(self.boss, "*!*@1.1.1.1")
        self.assertEqual(self.take(self.boss), [events.ServerBanRemoved("*!*@1.1.1.1")])
        self.assertRaises(
            errors.NoSuchServerBan, self.operators.unban, self.boss, "1.1.1.1"
        )
        self.assertIsNone(self.chat.server_bans.address_ban("1.1.1.1"))
        self.assertEqual(self.chat.audit.recent(1)[0].action, "server-unban")


class AuditTests(PowersTestCase):
    def test_audit(self) -> None:
        """
        The newest entries, oldest first, bounded; the oper itself is one.
        """
        for n in range(5):
            self.operators.wall(self.boss, f"notice {n}")
        self.take(self.boss)
        entries = self.operators.audit(self.boss, 3)
        self.assertEqual(
            [e.detail for e in entries], ["notice 2", "notice 3", "notice 4"]
        )
        self.assertEqual(self.take(self.boss), [events.AuditLog(entries)])
        self.assertEqual(len(self.operators.audit(self.boss, 10_000)), 6)
        self.assertEqual(self.operators.audit(self.boss, 0)[0].detail, "notice 4")
        self.assertEqual(self.chat.audit.recent(6)[0].action, "oper")
        self.assertEqual(AUDIT_MAX, 200)

    def test_actor(self) -> None:
        """An operator under another nickname is named with its account."""
        self.oper(self.alice, "chief")
        self.operators.wall(self.alice, "hi")
        self.assertEqual(self.chat.audit.recent(1)[0].actor, "alice (Chief)")


class ListedTests(PowersTestCase):
    def test_unlisted(self) -> None:
        """
        When the operators file no longer names an account, whoever is an
        operator through it loses the status and is told; the command
        line's operators stay.
        """
        self.oper(self.alice, "chief")
        self.take(self.alice)
        self.take(self.boss)
        self.operators.set_listed(["someone"])
        self.assertFalse(self.operators.is_operator(self.alice))
        self.assertTrue(self.operators.is_operator(self.boss))
        self.assertEqual(self.take(self.alice), [events.ServerOperatorDown()])
        self.assertEqual(self.take(self.boss), [])
        self.assertIn("someone", self.operators.named)
        self.assertNotIn("chief", self.operators.named)
        self.assertRaises(
            errors.NotServerOperator,
            self.failureResultOf(
                Deferred.fromCoroutine(self.operators.oper(self.bob, "chief", PASSWORD))
            ).raiseException,
        )
