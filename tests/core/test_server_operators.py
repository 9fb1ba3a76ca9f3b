"""
Server operators in the core (L{chatservice.core.server_operators}), and
the chat operations an IRC client's logging in needs: joining the chat
already logged in, and logging in without taking the account's name.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from chatservice.core import errors, events
from chatservice.core.accounts import Account, Accounts
from chatservice.core.chat import Chat
from chatservice.core.rooms import Member
from chatservice.core.server_operators import ServerOperators
from tests.core.test_accounts import HASHER, PASSWORD, WRONG, Hashing, Saves
from tests.core.test_chat import ChatTestCase, EventSession


class ServerOperatorTests(ChatTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.hashing = Hashing()
        self.accounts = Accounts(
            self.chat,
            in_thread=self.hashing,
            save=Saves(),
            clock=lambda: 0.0,
            hasher=HASHER,
        )
        for nick in ("Boss", "bob"):
            self.accounts.accounts[nick.lower()] = Account(nick, HASHER.hash(PASSWORD))
        self.operators = ServerOperators(self.chat, self.accounts, ["BOSS"])
        self.alice = self.connect("alice")

    def oper(self, member: Member, name: str, password: str) -> Deferred[None]:
        return Deferred.fromCoroutine(self.operators.oper(member, name, password))

    def test_oper(self) -> None:
        """
        The password of an operator account, named in any case, makes the
        member an operator, and tells it so.
        """
        self.successResultOf(self.oper(self.alice, "boss", PASSWORD))
        self.assertTrue(self.operators.is_operator(self.alice))
        self.assertEqual(self.operators.online(), 1)
        self.assertEqual(self.take(self.alice), [events.ServerOperatorUp()])

    def test_wrongPassword(self) -> None:
        failure = self.failureResultOf(self.oper(self.alice, "boss", WRONG))
        failure.trap(errors.WrongPassword)
        self.assertFalse(self.operators.is_operator(self.alice))
        self.assertEqual(self.take(self.alice), [])

    def test_notNamed(self) -> None:
        """
        An account the operator list does not name, or a name that is no
        account, is refused before any hashing.
        """
        for name in ("bob", "nobody"):
            failure = self.failureResultOf(self.oper(self.alice, name, PASSWORD))
            failure.trap(errors.NotServerOperator)
        self.assertEqual(self.hashing.calls, [])

    def test_noAccounts(self) -> None:
        operators = ServerOperators(self.chat, None, ["boss"])
        failure = self.failureResultOf(
            Deferred.fromCoroutine(operators.oper(self.alice, "boss", PASSWORD))
        )
        failure.trap(errors.NotServerOperator)

    def test_deoper(self) -> None:
        self.successResultOf(self.oper(self.alice, "boss", PASSWORD))
        self.take(self.alice)
        self.operators.deoper(self.alice)
        self.operators.deoper(self.alice)
        self.assertFalse(self.operators.is_operator(self.alice))
        self.assertEqual(self.take(self.alice), [events.ServerOperatorDown()])

    def test_disconnected(self) -> None:
        """
        A member gone is not counted, and one gone while its password was
        checked does not become an operator.
        """
        self.successResultOf(self.oper(self.alice, "boss", PASSWORD))
        self.chat.disconnect(self.alice, "gone")
        self.assertEqual(self.operators.online(), 0)
        bob = self.connect("bob2")
        self.hashing.hold = True
        d = self.oper(bob, "boss", PASSWORD)
        self.chat.disconnect(bob, "gone")
        self.hashing.release()
        self.successResultOf(d)
        self.assertFalse(self.operators.is_operator(bob))


class LoggedInConnectTests(ChatTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.chat = Chat(schedule=self.turns, registered={"bob"})

    def test_ownName(self) -> None:
        """
        Joining as the account's own name takes it from whoever holds it.
        """
        holder = self.chat.connect_as(EventSession(self.renderer), "bob")
        member = self.chat.connect(EventSession(self.renderer), "BOB", "bob")
        self.assertEqual((member.nick, member.account), ("bob", "bob"))
        self.assertIs(self.chat.members["bob"], member)
        self.assertTrue(holder.nick.startswith("guest"))
        self.assertIsNone(holder.account)

    def test_otherName(self) -> None:
        """
        Joining logged in under another name needs that name free.
        """
        member = self.chat.connect(EventSession(self.renderer), "robert", "bob")
        self.assertEqual((member.nick, member.account), ("robert", "bob"))
        self.assertRaises(
            errors.NickTaken,
            self.chat.connect,
            EventSession(self.renderer),
            "robert",
            "bob",
        )

    def test_logInKeepingName(self) -> None:
        """
        Logging in without taking the name keeps a name that is free to
        keep; a name registered to another account is given up for the
        account's.
        """
        chat = Chat(schedule=self.turns, registered={"bob", "carol"})
        member = chat.connect(EventSession(self.renderer), "robert")
        chat.log_in(member, "bob", take_name=False)
        self.assertEqual((member.nick, member.account), ("robert", "bob"))
        carol = chat.connect_as(EventSession(self.renderer), "carol")
        chat.log_in(carol, "bob", take_name=False)
        self.assertEqual((carol.nick, carol.account), ("bob", "bob"))
