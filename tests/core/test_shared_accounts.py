"""
Accounts in a database that several servers share (PostgreSQL): what
L{chatservice.core.accounts.Accounts} does with a C{lookup}, in memory,
through the line and IRC front ends. L{SharedDatabase} stands in for the
database and for the other servers writing to it; the tests against a
real PostgreSQL are in tests/storage/test_postgres_database.py.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from chatservice.core import errors
from chatservice.core.accounts import Account, Accounts
from chatservice.frontends.limits import Limits
from tests.core.test_accounts import HASHER, PASSWORD, WRONG, Hashing, logged_in
from tests.support.memory import Connection, Harness, discard

DOWN = "the account database cannot be reached. Try again later."


class SharedDatabase:
    """
    The accounts of a database other servers write to as well: C{lookup}
    and C{save} as L{Accounts} takes them, failing while C{down}.
    """

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.down = False
        self.lookups: list[str] = []

    def elsewhere(self, nick: str, password: str = PASSWORD) -> None:
        """Another server registers C{nick}, or changes its password."""
        self.accounts[nick.casefold()] = Account(nick, HASHER.hash(password))

    def lookup(self, key: str) -> Deferred[Account | None]:
        self.lookups.append(key)
        if self.down:
            return defer.fail(ConnectionError("PostgreSQL is down"))
        return defer.succeed(self.accounts.get(key))

    def save(
        self, key: str, nick: str, password_hash: str, now: float, new: bool
    ) -> Deferred[bool]:
        if self.down:
            return defer.fail(ConnectionError("PostgreSQL is down"))
        if new:
            if key in self.accounts:
                return defer.succeed(False)
            self.accounts[key] = Account(nick, password_hash)
            return defer.succeed(True)
        if key not in self.accounts:
            return defer.succeed(False)
        self.accounts[key] = Account(self.accounts[key].nick, password_hash)
        return defer.succeed(True)


class SharedAccountsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.hashing = Hashing()
        self.database = SharedDatabase()
        self.harness = Harness(
            Limits(flood_rate=0),
            accounts=lambda chat, registered: Accounts(
                chat,
                in_thread=self.hashing,
                save=self.database.save,
                clock=lambda: self.harness.clock.seconds(),
                accounts=registered,
                hasher=HASHER,
                lookup=self.database.lookup,
            ),
        )
        assert self.harness.accounts is not None
        self.accounts = self.harness.accounts

    def named(self, nick: str) -> Connection:
        client = self.harness.connect()
        client.say(f"/nick {nick}")
        discard(client)
        return client

    def test_registeredElsewhere(self) -> None:
        """
        An account another server registered after this one started logs
        in here, and is known here from then on.
        """
        self.database.elsewhere("Bob")
        client = self.harness.connect()
        discard(client)
        client.say(f"/login bob {PASSWORD}")
        self.assertEqual(client.take(), logged_in("Bob"))
        self.assertEqual(self.database.lookups, ["bob"])
        self.assertIn("bob", self.accounts.accounts)

    def test_passwordChangedElsewhere(self) -> None:
        """
        The database's password counts, not the one this server read at
        start: a password changed on another server (because it leaked,
        say) no longer works here.
        """
        self.accounts.accounts["bob"] = Account("Bob", HASHER.hash(WRONG))
        self.database.elsewhere("Bob", PASSWORD)
        client = self.harness.connect()
        discard(client)
        client.say(f"/login bob {WRONG}")
        self.assertEqual(client.take(), ["!!! Wrong password for Bob."])
        client.say(f"/login bob {PASSWORD}")
        self.assertEqual(client.take(), logged_in("Bob"))

    def test_notRegisteredAnywhere(self) -> None:
        client = self.harness.connect()
        discard(client)
        client.say(f"/login nobody {PASSWORD}")
        self.assertEqual(client.take(), ["!!! nobody is not registered."])
        self.assertEqual(self.hashing.calls, [])

    def test_registeredElsewhereAlready(self) -> None:
        """
        A name another server registered is refused before any hashing.
        """
        self.database.elsewhere("alice")
        client = self.named("alice")
        client.say("/register another-password")
        self.assertEqual(client.take(), ["!!! alice is registered already."])
        self.assertEqual(self.hashing.calls, [])

    def test_registeredMeanwhile(self) -> None:
        """
        Another server registers the name while this one hashes the
        password: the database keeps the first, this registration is told
        why it failed, and the name is not held here.
        """
        client = self.named("alice")
        self.hashing.hold = True
        client.say(f"/register {PASSWORD}")
        self.database.elsewhere("Alice", "the-other-password")
        self.hashing.release()
        self.harness.turn()
        self.assertEqual(
            client.take(), ["!!! alice was registered by someone else meanwhile."]
        )
        self.assertEqual(self.database.accounts["alice"].nick, "Alice")
        self.assertTrue(
            HASHER.verify(
                self.database.accounts["alice"].password_hash, "the-other-password"
            )
        )
        self.assertNotIn("alice", self.accounts.accounts)
        member = client.proto.member
        assert member is not None
        self.assertIsNone(member.account)

    def test_registerStoresOnce(self) -> None:
        client = self.named("alice")
        client.say(f"/register {PASSWORD}")
        self.assertEqual(
            client.take(), ["*** alice is registered to you, and you are logged in."]
        )
        self.assertEqual(list(self.database.accounts), ["alice"])

    def test_passwordChange(self) -> None:
        """A password change is stored as an update of the database's account."""
        self.database.elsewhere("bob")
        client = self.harness.connect()
        discard(client)
        client.say(f"/login bob {PASSWORD}")
        discard(client)
        client.say(f"/password {PASSWORD} new-password-here")
        self.assertEqual(client.take(), ["*** Your password is changed."])
        self.assertTrue(
            HASHER.verify(
                self.database.accounts["bob"].password_hash, "new-password-here"
            )
        )

    def test_databaseDown(self) -> None:
        """
        With the database down, logging in, registering and changing a
        password each say so in one line, without hashing anything; the
        chat goes on.
        """
        self.database.elsewhere("bob")
        owner = self.harness.connect()
        discard(owner)
        owner.say(f"/login bob {PASSWORD}")
        discard(owner)
        self.database.down = True
        hashed = len(self.hashing.calls)
        client = self.named("alice")
        discard(owner)
        client.say(f"/login bob {PASSWORD}")
        self.assertEqual(client.take(), [f"!!! Logging in is not possible now: {DOWN}"])
        client.say(f"/register {PASSWORD}")
        self.assertEqual(
            client.take(), [f"!!! Registering is not possible now: {DOWN}"]
        )
        owner.say(f"/password {PASSWORD} new-password-here")
        self.assertEqual(
            owner.take(), [f"!!! Changing the password is not possible now: {DOWN}"]
        )
        self.assertEqual(len(self.hashing.calls), hashed)
        client.say("still talking")
        self.assertEqual(owner.take(), ["[lobby] <alice> still talking"])

    def test_databaseDownWhileSaving(self) -> None:
        client = self.named("alice")
        self.hashing.hold = True
        client.say(f"/register {PASSWORD}")
        self.database.down = True
        self.hashing.release()
        self.harness.turn()
        self.assertEqual(client.take(), ["!!! Registration failed; try again later."])
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)
        self.assertNotIn("alice", self.accounts.accounts)

    def test_ircPassWhileDown(self) -> None:
        """
        IRC's PASS login with the database down: told why, and the
        connection closed with "try again later", not "bad password".
        """
        self.database.elsewhere("bob")
        self.database.down = True
        client = self.harness.connect_irc()
        client.send(f"PASS {PASSWORD}\r\nNICK bob\r\nUSER b 0 * :Bob\r\n")
        self.assertEqual(
            client.take(),
            [
                ":My.Little.Server NOTICE * :The account database cannot be "
                "reached; try again later",
                "ERROR :Closing link: Access denied: try again later",
            ],
        )
        self.assertIsNone(client.proto.member)

    def test_withoutLookup(self) -> None:
        """
        Without a lookup (one server, SQLite) memory is all there is: an
        unknown name is not registered, without asking anyone.
        """
        accounts = Accounts(
            self.harness.chat,
            in_thread=self.hashing,
            save=self.database.save,
            clock=lambda: 0.0,
            hasher=HASHER,
        )
        self.database.elsewhere("bob")
        client = self.harness.connect()
        member = client.proto.member
        assert member is not None
        failure = self.failureResultOf(
            Deferred.fromCoroutine(accounts.login(member, "bob", PASSWORD))
        )
        self.assertIsInstance(failure.value, errors.NotRegistered)
        self.assertEqual(self.database.lookups, [])
