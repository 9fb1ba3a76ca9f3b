"""
Tests for registered nicknames: L{chatservice.core.accounts} through the chat
commands C{/register}, C{/login}, C{/logout} and C{/password}, as
C{docs/protocol.md} ("Accounts") specifies them.

Most tests drive the real protocol in memory (L{tests.support.memory.Harness}) with
an C{in_thread} stand-in that the test controls: it runs the hashing at once
or holds it until the test releases it, and counts every call. A cheap
argon2 hasher keeps them fast. The guessing limits run on the harness's
L{Clock}. A few tests use the real thing: threads (the wiring
C{twistd chat} uses) and, end to end, the installed server on a database
file that outlives a restart.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from argon2 import PasswordHasher, Type
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial import unittest

from chatservice.core import names
from chatservice.core.accounts import (
    ACCOUNT_FAILURES,
    ACCOUNT_REFILL,
    CONNECTION_FAILURES,
    CONNECTION_REFILL,
    HASHING_AT_ONCE,
    Account,
    Accounts,
)
from chatservice.core.chat import Chat
from chatservice.core.rooms import Member
from chatservice.frontends.line.protocol import LineFactory
from chatservice.server import tap
from tests.support.helpers import (
    TIMEOUT,
    ServerProcess,
    SocketClient,
    deferred_test,
    make_temp_dir,
)
from tests.support.memory import Connection, Harness, discard

# Cheap to compute; the tests that care about the real parameters say so.
HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

PASSWORD = "correct-horse-battery"
WRONG = "not-the-password"

LOGGED_IN_ELSEWHERE = "*** {nick} has logged in from elsewhere; you are renamed."
GUEST = re.compile(r"guest\d+")
TOO_MANY = re.compile(r"^!!! Too many failed logins; try again in (\d+) s\.$")


def refused_as_registered(nick: str) -> str:
    return (
        f"!!! The nickname {nick} is registered; if it is yours, use "
        f"/login {nick} PASSWORD."
    )


def now_known_as(nick: str) -> str:
    return f"*** You are now known as {nick}."


def logged_in(nick: str) -> list[str]:
    """
    What a successful C{/login} as C{nick} by someone of another name says.
    """
    return [now_known_as(nick), f"*** You are logged in as {nick}."]


class Hashing:
    """
    Stands in for C{Accounts.in_thread}: counts every call, and runs the
    function at once or, while C{hold} is set, keeps it (with an unfired
    Deferred) until L{release}.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self.hold = False
        self.pending: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]]
        self.pending = []

    def __call__(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        self.calls.append((f, args))
        if not self.hold:
            return defer.maybeDeferred(f, *args)
        d: Deferred[Any] = Deferred()
        self.pending.append((f, args, d))
        return d

    def release(self) -> None:
        """
        Run the oldest held call and fire its Deferred with the result.
        """
        f, args, d = self.pending.pop(0)
        d.callback(f(*args))


class Saves:
    """
    Stands in for C{Accounts.save}: records every account saved, and fails
    while C{fail} is set.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, float]] = []
        self.fail = False

    def __call__(
        self, nick_key: str, nick: str, password_hash: str, now: float, new: bool
    ) -> Deferred[bool]:
        self.calls.append((nick_key, nick, password_hash, now))
        if self.fail:
            return defer.fail(RuntimeError("the disk is full"))
        return defer.succeed(True)


@contextmanager
def all_log_events() -> Iterator[list[LogEvent]]:
    """
    Every event logged through L{twisted.logger} meanwhile.
    """
    events: list[LogEvent] = []

    def record(event: LogEvent) -> None:
        events.append(event)

    observer = cast(ILogObserver, record)
    globalLogPublisher.addObserver(observer)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(observer)


def event_text(event: LogEvent) -> str:
    """
    Everything an observer could write of C{event}: its message, the repr
    of all its fields, and the traceback of its failure, if any.
    """
    text = formatEvent(event) + "\n" + repr(event)
    failure = event.get("log_failure")
    if isinstance(failure, Failure):
        text += "\n" + failure.getTraceback()
    return text


class AccountsTestCase(unittest.SynchronousTestCase):
    """
    The chat server in memory, keeping accounts.
    """

    def setUp(self) -> None:
        self.hashing = Hashing()
        self.saves = Saves()
        self.harness = Harness(
            accounts=lambda chat, registered: Accounts(
                chat,
                in_thread=self.hashing,
                save=self.saves,
                clock=lambda: self.harness.clock.seconds(),
                accounts=registered,
                hasher=HASHER,
            )
        )
        assert self.harness.accounts is not None
        self.accounts = self.harness.accounts

    def clients(self, n: int) -> list[Connection]:
        return self.harness.clients(n)

    def owner(self, nick: str = "bob", password: str = PASSWORD) -> Connection:
        """
        A connection that has registered C{nick} and is logged in as it; the
        output of every connection so far is discarded.
        """
        client = self.harness.connect()
        client.say(f"/nick {nick}")
        client.say(f"/register {password}")
        self.assertEqual(
            client.take()[-1],
            f"*** {nick} is registered to you, and you are logged in.",
        )
        discard(*self.harness.connections)
        return client

    def add_account(self, nick: str = "bob", password: str = PASSWORD) -> None:
        """
        Register C{nick} directly, as if read from the database at start.
        """
        self.accounts.accounts[names.fold(nick)] = Account(nick, HASHER.hash(password))

    def member(self, client: Connection) -> Member:
        assert client.proto.member is not None
        return client.proto.member

    def replies(self, client: Connection) -> list[str]:
        """
        What C{client} was sent for itself (replies and errors), leaving out
        room traffic.
        """
        return [line for line in client.take() if line.startswith(("*** ", "!!! "))]

    def assertNothing(self, *clients: Connection) -> None:
        for client in clients:
            self.assertEqual(client.take(), [], f"{client.nick} was sent something")

    def assertTooMany(self, client: Connection, at_most: float) -> int:
        """
        C{client} was told (only) that it failed too often; returns the
        seconds it was told to wait, checked to be no more than a second
        over C{at_most}.
        """
        [line] = self.replies(client)
        match = TOO_MANY.match(line)
        assert match is not None, line
        seconds = int(match.group(1))
        self.assertGreater(seconds, 0)
        self.assertLessEqual(seconds, at_most + 1)
        return seconds


class RegisterTests(AccountsTestCase):
    def test_register(self) -> None:
        """
        C{/register PASSWORD} registers the member's nickname and logs it in;
        what is saved is an argon2id hash of the password, never the password.
        """
        [client] = self.clients(1)
        client.say("/nick Alice")
        self.assertEqual(client.take(), [now_known_as("Alice")])
        self.harness.advance(7)
        client.say(f"/register {PASSWORD}")
        self.assertEqual(
            client.take(), ["*** Alice is registered to you, and you are logged in."]
        )
        [(key, nick, password_hash, when)] = self.saves.calls
        self.assertEqual((key, nick, when), ("alice", "Alice", 7.0))
        self.assertTrue(password_hash.startswith("$argon2id$"), password_hash)
        self.assertNotIn(PASSWORD, password_hash)
        self.assertTrue(HASHER.verify(password_hash, PASSWORD))
        self.assertEqual(
            self.accounts.accounts["alice"], Account("Alice", password_hash)
        )
        self.assertEqual(self.member(client).account, "alice")
        self.assertEqual(client.nick, "Alice")

    def test_registeredAlready(self) -> None:
        client = self.owner("bob")
        client.say("/register another-password")
        self.assertEqual(client.take(), ["!!! bob is registered already."])
        self.assertEqual(len(self.saves.calls), 1)
        self.assertEqual(len(self.hashing.calls), 1)

    def test_guestNickCannotBeRegistered(self) -> None:
        [client] = self.clients(1)
        self.assertRegex(client.nick, GUEST)
        client.say(f"/register {PASSWORD}")
        self.assertEqual(
            client.take(),
            ["!!! Guest nicknames cannot be registered: choose one with /nick first."],
        )
        self.assertEqual(self.accounts.accounts, {})
        self.assertEqual(self.saves.calls, [])
        self.assertEqual(self.hashing.calls, [])

    def test_passwordLength(self) -> None:
        """
        A password has 8 to 128 characters.
        """
        too_short, shortest = "x" * 7, "x" * 8
        too_long, longest = "y" * 129, "y" * 128
        a, b = self.clients(2)
        a.say("/nick alice")
        b.say("/nick bob")
        discard(a, b)
        for password in (too_short, too_long):
            a.say(f"/register {password}")
            self.assertEqual(
                a.take(),
                ["!!! A password must be 8 to 128 characters, with no spaces."],
            )
        self.assertEqual(self.saves.calls, [])
        self.assertEqual(self.hashing.calls, [])
        a.say(f"/register {shortest}")
        b.say(f"/register {longest}")
        self.assertEqual(
            [a.take(), b.take()],
            [
                ["*** alice is registered to you, and you are logged in."],
                ["*** bob is registered to you, and you are logged in."],
            ],
        )

    def test_wrongNumberOfWords(self) -> None:
        [client] = self.clients(1)
        client.say("/nick alice")
        client.take()
        for line in ("/register", f"/register {PASSWORD} {PASSWORD}"):
            client.say(line)
            self.assertEqual(client.take(), ["!!! Usage: /register PASSWORD"], line)
        self.assertEqual(self.accounts.accounts, {})
        self.assertEqual(self.hashing.calls, [])

    def test_saveFails(self) -> None:
        """
        If the account cannot be saved, the name is not registered.
        """
        self.saves.fail = True
        a, b = self.clients(2)
        a.say("/nick alice")
        a.take()
        a.say(f"/register {PASSWORD}")
        self.assertEqual(a.take(), ["!!! Registration failed; try again later."])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.accounts.accounts, {})
        self.assertIsNone(self.member(a).account)
        a.say("/nick someone")
        b.take()
        b.say("/nick alice")
        self.assertEqual(b.take(), [now_known_as("alice")])

    def test_serverWithoutAccounts(self) -> None:
        harness = Harness()
        [client] = harness.clients(1)
        for line in (f"/register {PASSWORD}", f"/login bob {PASSWORD}", "/logout"):
            client.say(line)
            self.assertEqual(client.take(), ["!!! This server keeps no accounts."])


class LogoutTests(AccountsTestCase):
    def test_logoutGivesUpRegisteredName(self) -> None:
        """
        Logging out renames the holder of a registered name to a guest name,
        which its room sees; the name is then refused to it like to anyone.
        """
        [other] = self.clients(1)
        client = self.owner("bob")
        client.say("/logout")
        lines = client.take()
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual(lines[0], "*** You are logged out.")
        guest = client.nick
        self.assertRegex(guest, GUEST)
        self.assertEqual(lines[1], now_known_as(guest))
        self.assertEqual(other.take(), [f"[lobby] --- bob is now known as {guest}"])
        self.assertIsNone(self.member(client).account)
        client.say("/nick bob")
        self.assertEqual(client.take(), [refused_as_registered("bob")])

    def test_logoutKeepsUnregisteredName(self) -> None:
        """
        A member logged in under another, unregistered, name keeps it.
        """
        client = self.owner("bob")
        client.say("/nick bobby")
        client.take()
        client.say("/logout")
        self.assertEqual(client.take(), ["*** You are logged out."])
        self.assertEqual(client.nick, "bobby")

    def test_notLoggedIn(self) -> None:
        [client] = self.clients(1)
        client.say("/logout")
        self.assertEqual(client.take(), ["!!! You are not logged in."])
        client = self.owner("bob")
        client.say("/logout")
        client.take()
        client.say("/logout")
        self.assertEqual(client.take(), ["!!! You are not logged in."])


class ImpersonationTests(AccountsTestCase):
    def test_registeredNameRefusedInAnyCase(self) -> None:
        owner = self.owner("Bob")
        owner.lost()
        [client] = self.clients(1)
        for nick in ("Bob", "bob", "BOB", "bOb"):
            client.say(f"/nick {nick}")
            self.assertEqual(client.take(), [refused_as_registered(nick)])
        self.assertRegex(client.nick, GUEST)

    def test_registeredWhileOwnerConnected(self) -> None:
        """
        The name is taken as well as registered; either refusal will do, as
        long as it is refused.
        """
        self.owner("bob")
        [client] = self.clients(1)
        client.say("/nick BOB")
        [line] = client.take()
        self.assertIn(
            line, ["!!! The nickname BOB is taken.", refused_as_registered("BOB")]
        )
        self.assertRegex(client.nick, GUEST)

    def test_newGuestsNeverGetRegisteredName(self) -> None:
        """
        A guest-shaped name that is registered is skipped, both for a new
        connection and for someone renamed to a guest name.
        """
        first = self.clients(4)
        self.assertEqual([c.nick for c in first], [f"guest{n}" for n in range(1, 5)])
        self.add_account("guest5")
        fifth = self.harness.connect()
        self.assertNotEqual(fifth.nick, "guest5")
        self.assertRegex(fifth.nick, GUEST)
        fifth.take()
        fifth.say("/nick guest5")
        self.assertEqual(fifth.take(), [refused_as_registered("guest5")])

        self.assertEqual(fifth.nick, "guest6")
        owner = self.owner("bob")
        # The next guest name would be guest8.
        self.add_account("Guest8")
        owner.say("/logout")
        self.assertNotEqual(owner.nick.lower(), "guest8")
        self.assertRegex(owner.nick, GUEST)


class LoginTests(AccountsTestCase):
    def assertNameTaken(
        self,
        nick: str,
        holder: Connection,
        client: Connection,
        watcher: Connection,
        newcomer: str,
    ) -> None:
        """
        C{client} (once C{newcomer}) logged in as C{nick}, which C{holder}
        had: the holder is renamed to a guest and told why, and the room
        sees both renames.
        """
        guest = holder.nick
        self.assertRegex(guest, GUEST)
        self.assertEqual(
            holder.take(),
            [
                LOGGED_IN_ELSEWHERE.format(nick=nick),
                now_known_as(guest),
                f"[lobby] --- {newcomer} is now known as {nick}",
            ],
        )
        self.assertEqual(
            client.take(),
            [*logged_in(nick), f"[lobby] --- {nick} is now known as {guest}"],
        )
        self.assertEqual(
            watcher.take(),
            [
                f"[lobby] --- {nick} is now known as {guest}",
                f"[lobby] --- {newcomer} is now known as {nick}",
            ],
        )

    def test_loginTakesNameFromGuest(self) -> None:
        """
        A registration that finishes after its owner left leaves the name to
        whoever took it meanwhile; logging in from another connection takes
        it back, and everyone in the room sees both renames.
        """
        registrant, holder, watcher = self.clients(3)
        registrant.say("/nick bob")
        discard(registrant, holder, watcher)
        self.hashing.hold = True
        registrant.say(f"/register {PASSWORD}")
        registrant.lost()
        self.assertEqual(holder.take(), ["[lobby] <-- bob quit (connection lost)"])
        holder.say("/nick bob")
        self.assertEqual(holder.take(), [now_known_as("bob")])
        self.hashing.release()
        self.harness.turn()
        self.assertIn("bob", self.accounts.accounts)
        self.assertEqual(holder.nick, "bob")
        self.assertIsNone(self.member(holder).account)
        discard(holder, watcher)

        self.hashing.hold = False
        client = self.harness.connect()
        discard(holder, watcher, client)
        newcomer = client.nick
        client.say(f"/login bob {PASSWORD}")
        self.assertNameTaken("bob", holder, client, watcher, newcomer)
        self.assertEqual(client.nick, "bob")
        self.assertEqual(self.member(client).account, "bob")
        client.lost()
        holder.take()
        holder.say("/nick bob")
        self.assertEqual(holder.take(), [refused_as_registered("bob")])

    def test_loginTakesNameFromOldSession(self) -> None:
        [watcher] = self.clients(1)
        old = self.owner("bob")
        client = self.harness.connect()
        discard(watcher, old, client)
        newcomer = client.nick
        client.say(f"/login bob {PASSWORD}")
        self.assertNameTaken("bob", old, client, watcher, newcomer)
        self.assertIsNone(self.member(old).account)
        self.assertEqual(self.member(client).account, "bob")

    def test_loginAnyCase(self) -> None:
        """
        The name is matched in any case and given as registered.
        """
        self.add_account("Bob")
        [client] = self.clients(1)
        client.say(f"/login bOB {PASSWORD}")
        self.assertEqual(client.take(), logged_in("Bob"))

    def test_wrongPassword(self) -> None:
        old = self.owner("bob")
        [client] = self.clients(1)
        old.take()
        nick = client.nick
        client.say(f"/login bob {WRONG}")
        self.assertEqual(client.take(), ["!!! Wrong password for bob."])
        self.assertNothing(old)
        self.assertEqual((client.nick, old.nick), (nick, "bob"))
        self.assertIsNone(self.member(client).account)
        self.assertEqual(self.member(old).account, "bob")

    def test_notRegistered(self) -> None:
        [client] = self.clients(1)
        client.say(f"/login carol {PASSWORD}")
        self.assertEqual(client.take(), ["!!! carol is not registered."])
        self.assertEqual(self.hashing.calls, [])

    def test_loggedInAlready(self) -> None:
        client = self.owner("bob")
        client.say(f"/login BOB {PASSWORD}")
        self.assertEqual(client.take(), ["!!! You are logged in as bob already."])

    def test_wrongNumberOfWords(self) -> None:
        self.add_account("bob")
        [client] = self.clients(1)
        for line in ("/login", "/login bob", f"/login bob {PASSWORD} more"):
            client.say(line)
            self.assertEqual(client.take(), ["!!! Usage: /login NICK PASSWORD"])
        self.assertEqual(self.hashing.calls, [])


class RateLimitTests(AccountsTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.add_account("bob")

    def failing(self, client: Connection, times: int = 1) -> None:
        for _ in range(times):
            before = len(self.hashing.calls)
            client.say(f"/login bob {WRONG}")
            self.assertEqual(self.replies(client), ["!!! Wrong password for bob."])
            self.assertEqual(len(self.hashing.calls), before + 1)

    def refused(self, client: Connection, password: str, at_most: float) -> int:
        """
        C{client}'s login is refused as too many failures, without hashing.
        """
        before = len(self.hashing.calls)
        client.say(f"/login bob {password}")
        seconds = self.assertTooMany(client, at_most)
        self.assertEqual(len(self.hashing.calls), before)
        return seconds

    def test_perConnection(self) -> None:
        """
        A connection may fail 3 times, then once per 10 seconds; a refused
        attempt is not checked, even with the right password.
        """
        self.assertEqual((CONNECTION_FAILURES, CONNECTION_REFILL), (3, 10.0))
        client, other = self.clients(2)
        self.failing(client, 3)
        seconds = self.refused(client, WRONG, at_most=10)
        self.assertGreaterEqual(seconds, 10)
        self.refused(client, PASSWORD, at_most=10)
        self.harness.advance(9.5)
        self.refused(client, PASSWORD, at_most=0.5)
        self.harness.advance(0.5)
        self.failing(client)
        self.refused(client, WRONG, at_most=10)
        # Another connection has its own budget.
        other.say(f"/login bob {PASSWORD}")
        self.assertEqual(self.replies(other), logged_in("bob"))
        self.harness.advance(10)
        client.say(f"/login bob {PASSWORD}")
        self.assertEqual(self.replies(client), logged_in("bob"))

    def test_perAccount(self) -> None:
        """
        An account may fail 5 times from all connections together, then once
        per 30 seconds; meanwhile even its owner's login is refused.
        """
        self.assertEqual((ACCOUNT_FAILURES, ACCOUNT_REFILL), (5, 30.0))
        first, second, fresh = self.clients(3)
        self.failing(first, 3)
        self.failing(second, 2)
        self.refused(fresh, WRONG, at_most=30)
        seconds = self.refused(fresh, PASSWORD, at_most=30)
        self.assertGreaterEqual(seconds, 30)
        self.harness.advance(29)
        self.refused(fresh, PASSWORD, at_most=1)
        self.harness.advance(1)
        fresh.say(f"/login bob {PASSWORD}")
        self.assertEqual(fresh.take(), logged_in("bob"))

    def test_otherAccountsUnaffected(self) -> None:
        """
        The per-account limit is for that account only.
        """
        self.add_account("carol")
        first, second, fresh = self.clients(3)
        self.failing(first, 3)
        self.failing(second, 2)
        fresh.say(f"/login carol {PASSWORD}")
        self.assertEqual(fresh.take(), logged_in("carol"))

    def test_successDoesNotSpend(self) -> None:
        """
        Only failures count: after more successful logins than either budget
        holds, a connection may still fail 3 times and the account 5.
        """
        client, other = self.clients(2)
        for _ in range(ACCOUNT_FAILURES + 1):
            client.say(f"/login bob {PASSWORD}")
            client.say("/logout")
            self.assertEqual(
                self.replies(client)[:3],
                [*logged_in("bob"), "*** You are logged out."],
            )
        self.failing(client, 3)
        self.refused(client, WRONG, at_most=10)
        self.failing(other, 2)
        self.refused(other, WRONG, at_most=30)

    def test_wrongOldPasswordSpends(self) -> None:
        """
        C{/password} with a wrong OLD is a guess like any other.
        """
        client = self.owner("carol")
        for _ in range(3):
            client.say(f"/password {WRONG} new-password-1")
            self.assertEqual(
                client.take(), ["!!! Wrong password; the password is unchanged."]
            )
        before = len(self.hashing.calls)
        client.say(f"/password {PASSWORD} new-password-1")
        self.assertTooMany(client, 10)
        self.assertEqual(len(self.hashing.calls), before)
        self.assertEqual(len(self.saves.calls), 1)

    def test_waitingAsToldIsEnough(self) -> None:
        """
        When both the connection's and the account's budgets are spent, the
        refusal gives the longer wait, so a client that waits as told is let
        in.
        """
        client, other = self.clients(2)
        self.failing(client, 3)
        self.failing(other, 2)
        seconds = self.refused(client, PASSWORD, at_most=30)
        self.harness.advance(seconds)
        client.say(f"/login bob {PASSWORD}")
        self.assertEqual(self.replies(client), logged_in("bob"))


class OrderingTests(AccountsTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.add_account("bob")
        self.hashing.hold = True

    def test_linesAfterLoginWait(self) -> None:
        """
        Lines sent right after C{/login}, in the same chunk or later, are
        handled once the login is done, in order, under the new name.
        """
        client, watcher = self.clients(2)
        guest = client.nick
        client.lines(f"/login bob {PASSWORD}", "hello")
        client.say("/me waves")
        client.say("/join python")
        self.assertEqual(len(self.hashing.pending), 1)
        self.assertNothing(client, watcher)
        self.hashing.release()
        self.harness.turn()
        self.assertEqual(
            watcher.take(),
            [
                f"[lobby] --- {guest} is now known as bob",
                "[lobby] <bob> hello",
                "[lobby] * bob waves",
            ],
        )
        self.assertEqual(
            client.take(), [*logged_in("bob"), "*** Now talking in python (1 member)."]
        )

    def test_linesAfterFailedLogin(self) -> None:
        client, watcher = self.clients(2)
        guest = client.nick
        client.lines(f"/login bob {WRONG}", "hello")
        self.assertNothing(client, watcher)
        self.hashing.release()
        self.harness.turn()
        self.assertEqual(client.take(), ["!!! Wrong password for bob."])
        self.assertEqual(watcher.take(), [f"[lobby] <{guest}> hello"])

    def test_othersRelayedMeanwhile(self) -> None:
        """
        While one connection's login is hashing, everyone else's lines are
        relayed at once.
        """
        client, talker, watcher = self.clients(3)
        client.say(f"/login bob {PASSWORD}")
        talker.say("still here")
        line = f"[lobby] <{talker.nick}> still here"
        self.assertEqual(watcher.take(), [line])
        self.assertEqual(client.take(), [line])
        self.assertEqual(len(self.hashing.pending), 1)
        self.hashing.release()
        self.harness.turn()
        self.assertEqual(client.take(), logged_in("bob"))

    def test_endOfInputWhilePending(self) -> None:
        """
        Input that ends during a login is still handled after it, then the
        connection quits.
        """
        client, watcher = self.clients(2)
        guest = client.nick
        client.lines(f"/login bob {PASSWORD}", "bye")
        client.half_close()
        self.assertTrue(client.connected)
        self.hashing.release()
        self.harness.turn()
        self.assertEqual(
            watcher.take(),
            [
                f"[lobby] --- {guest} is now known as bob",
                "[lobby] <bob> bye",
                "[lobby] <-- bob quit (connection closed)",
            ],
        )
        self.assertFalse(client.connected)

    def test_disconnectWhilePending(self) -> None:
        """
        A login that finishes after its connection is gone takes no name
        from anyone.
        """
        self.hashing.hold = False
        old, client = self.clients(2)
        old.say(f"/login bob {PASSWORD}")
        discard(old, client)
        self.hashing.hold = True
        client.say(f"/login bob {PASSWORD}")
        client.lost()
        self.hashing.release()
        self.harness.turn()
        self.assertEqual(old.nick, "bob")
        self.assertEqual(self.member(old).account, "bob")
        self.assertEqual(
            old.take(), [f"[lobby] <-- {client.nick} quit (connection lost)"]
        )

    def test_atMostTwoHashesAtOnce(self) -> None:
        self.assertEqual(HASHING_AT_ONCE, 2)
        clients = self.clients(3)
        for client in clients:
            client.say(f"/login bob {WRONG}")
        self.assertEqual(len(self.hashing.calls), 2)
        self.hashing.release()
        self.assertEqual(len(self.hashing.calls), 3)
        self.assertEqual(len(self.hashing.pending), 2)
        self.hashing.release()
        self.hashing.release()
        self.harness.turn()
        for client in clients:
            self.assertEqual(client.take(), ["!!! Wrong password for bob."])


class PasswordTests(AccountsTestCase):
    NEW = "a-new-password"

    def test_changePassword(self) -> None:
        client = self.owner("bob")
        [(_, _, first_hash, _)] = self.saves.calls
        client.say(f"/password {PASSWORD} {self.NEW}")
        self.assertEqual(client.take(), ["*** Your password is changed."])
        self.assertEqual(len(self.saves.calls), 2)
        key, nick, second_hash, _ = self.saves.calls[1]
        self.assertEqual((key, nick), ("bob", "bob"))
        self.assertNotEqual(second_hash, first_hash)
        self.assertTrue(second_hash.startswith("$argon2id$"), second_hash)
        self.assertTrue(HASHER.verify(second_hash, self.NEW))
        self.assertEqual(self.accounts.accounts["bob"], Account("bob", second_hash))

        other, another = self.clients(2)
        other.say(f"/login bob {PASSWORD}")
        self.assertEqual(other.take(), ["!!! Wrong password for bob."])
        another.say(f"/login bob {self.NEW}")
        self.assertEqual(self.replies(another), logged_in("bob"))

    def test_wrongOldPassword(self) -> None:
        client = self.owner("bob")
        client.say(f"/password {WRONG} {self.NEW}")
        self.assertEqual(
            client.take(), ["!!! Wrong password; the password is unchanged."]
        )
        self.assertEqual(len(self.saves.calls), 1)
        [other] = self.clients(1)
        other.say(f"/login bob {PASSWORD}")
        self.assertEqual(self.replies(other), logged_in("bob"))

    def test_notLoggedIn(self) -> None:
        self.add_account("bob")
        [client] = self.clients(1)
        client.say(f"/password {PASSWORD} {self.NEW}")
        self.assertEqual(client.take(), ["!!! Log in first: /login NICK PASSWORD."])
        self.assertEqual(self.hashing.calls, [])

    def test_newPasswordTooShort(self) -> None:
        client = self.owner("bob")
        client.say(f"/password {PASSWORD} short")
        self.assertEqual(
            client.take(),
            ["!!! A password must be 8 to 128 characters, with no spaces."],
        )
        self.assertEqual(len(self.saves.calls), 1)

    def test_wrongNumberOfWords(self) -> None:
        client = self.owner("bob")
        client.say(f"/password {PASSWORD}")
        self.assertEqual(client.take(), ["!!! Usage: /password OLD NEW"])

    def test_saveFails(self) -> None:
        client = self.owner("bob")
        self.saves.fail = True
        client.say(f"/password {PASSWORD} {self.NEW}")
        self.assertEqual(
            client.take(), ["!!! Changing the password failed; try again later."]
        )
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(
            HASHER.verify(self.accounts.accounts["bob"].password_hash, PASSWORD)
        )


class SecrecyTests(AccountsTestCase):
    def test_passwordsNeverLoggedOrSent(self) -> None:
        """
        No log event, and no line sent to anyone, contains a password, through
        a registration, a failed and a successful login, a change of password,
        a failed one and a failed save.
        """
        first, guessed, changed, never_saved = (
            "first-Secret-1",
            "guessed-Secret-2",
            "changed-Secret-3",
            "unsaved-Secret-4",
        )
        secrets = (first, guessed, changed, never_saved)
        with all_log_events() as events:
            _watcher, owner, guesser = self.clients(3)
            owner.say("/nick bob")
            owner.say(f"/register {first}")
            guesser.say(f"/login bob {guessed}")
            guesser.say(f"/login bob {first}")
            guesser.say(f"/password {guessed} {changed}")
            guesser.say(f"/password {first} {changed}")
            self.saves.fail = True
            guesser.say(f"/password {changed} {never_saved}")
            guesser.say(f"/login nobody {guessed}")
            guesser.say(f"/register {guessed}")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        formats = [event.get("log_format") for event in events]
        for expected in (
            "{account} registered",
            "Failed login as {account}",
            "{account} logged in",
            "{account} changed password",
            "Saving the account {account} failed",
        ):
            self.assertIn(expected, formats)
        for event in events:
            text = event_text(event)
            for secret in secrets:
                self.assertNotIn(secret, text)
        self.assertEqual(guesser.take()[-1], "!!! bob is registered already.")
        for client in self.harness.connections:
            sent = client.everything().decode("utf-8")
            for secret in secrets:
                self.assertNotIn(secret, sent)
        for call in self.saves.calls:
            for secret in secrets:
                self.assertNotIn(secret, repr(call))


def served_accounts(service: tap.ChatService) -> Accounts:
    """
    The accounts the line front end of C{service} serves.
    """
    [factory] = {
        child.factory
        for child in service
        if isinstance(getattr(child, "factory", None), LineFactory)
    }
    assert factory.accounts is not None
    return factory.accounts


class Recorder:
    renderer = LineFactory.renderer

    def __init__(self) -> None:
        self.data = b""

    def deliver(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        pass


class RecordingHasher(PasswordHasher):
    """
    A cheap hasher that notes the thread each hash and check runs on.
    """

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.threads: list[tuple[str, threading.Thread]] = []

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.threads.append(("hash", threading.current_thread()))
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> Any:
        self.threads.append(("verify", threading.current_thread()))
        return super().verify(hash, password)


def make_service(*argv: str) -> tap.ChatService:
    options = tap.Options()
    options.parseOptions(
        ["--database", ":memory:", "--port", "tcp:0:interface=127.0.0.1", *argv]
    )
    service = tap.makeService(options)
    assert isinstance(service, tap.ChatService)
    return service


class WiringTests(unittest.TestCase):
    """
    The accounts as C{twistd chat} makes them: hashing with argon2id on
    threads, accounts saved in the database.
    """

    def test_defaultHasher(self) -> None:
        """
        Unless told otherwise, passwords are hashed with argon2id and
        argon2-cffi's recommended parameters, as the server does.
        """
        recommended = PasswordHasher()
        built = Accounts(
            Chat(),
            in_thread=Hashing(),
            save=Saves(),
            clock=lambda: 0.0,
        )
        service = make_service()
        served = served_accounts(service)
        for accounts in (built, served):
            hasher = accounts.hasher
            self.assertEqual(hasher.type, Type.ID)
            self.assertEqual(
                (hasher.time_cost, hasher.memory_cost, hasher.parallelism),
                (
                    recommended.time_cost,
                    recommended.memory_cost,
                    recommended.parallelism,
                ),
            )

    @deferred_test
    async def test_hashingOffReactorThread(self) -> None:
        """
        Registering and logging in hash on a thread that is not the reactor's;
        the account is saved in the database.
        """
        service = make_service()
        database = service.database
        assert database is not None
        accounts = served_accounts(service)
        hasher = accounts.hasher = RecordingHasher()
        database.startService()
        self.addCleanup(database.stopService)

        chat = service.chat
        assert chat is not None
        owner = chat.connect(Recorder(), chat.guest_nick())
        chat.rename(owner, "bob")
        here = threading.current_thread()

        register = Deferred.fromCoroutine(accounts.register(owner, PASSWORD))
        await register.addTimeout(TIMEOUT, reactor)
        self.assertEqual(owner.account, "bob")
        [(what, thread)] = hasher.threads
        self.assertEqual(what, "hash")
        self.assertIsNot(thread, here)
        self.assertIsNot(thread, threading.main_thread())

        saved = await database.run(database.store.accounts)
        self.assertEqual(list(saved), ["bob"])
        self.assertTrue(saved["bob"].password_hash.startswith("$argon2id$"))

        client = chat.connect(Recorder(), chat.guest_nick())
        login = Deferred.fromCoroutine(accounts.login(client, "bob", PASSWORD))
        await login.addTimeout(TIMEOUT, reactor)
        self.assertEqual(client.nick, "bob")
        self.assertEqual(client.account, "bob")
        what, thread = hasher.threads[1]
        self.assertEqual(what, "verify")
        self.assertIsNot(thread, here)
        self.assertIsNot(thread, threading.main_thread())
        # Let the deliveries scheduled meanwhile run.
        await deferLater(reactor, 0, lambda: None)


class PersistenceTests(unittest.SynchronousTestCase):
    """
    The installed server keeps accounts in its database across a restart.
    """

    def start(self, database: Path) -> tuple[ServerProcess, int]:
        server = ServerProcess(self, options=["--database", str(database)])
        assert server.tcp_port is not None
        return server, server.tcp_port

    def stop(self, server: ServerProcess) -> bytes:
        """
        SIGTERM the server, check that it stopped cleanly, and return the rest
        of its output. (twistd re-raises the signal once it has shut down, so
        its status is -SIGTERM; see the README.)
        """
        output = server.output + server.stop()
        self.assertEqual(server.process.returncode, 0, output)
        self.assertIn(b"Server Shut Down.", output)
        return output

    def test_accountSurvivesRestart(self) -> None:
        database = make_temp_dir(self) / "accounts.sqlite3"
        server, port = self.start(database)
        owner = SocketClient(self, port)
        owner.welcome()
        owner.send(b"/nick Carol\n")
        self.assertEqual(owner.read_line(), b"*** You are now known as Carol.\r\n")
        owner.send(f"/register {PASSWORD}\n".encode())
        self.assertEqual(
            owner.read_line(),
            b"*** Carol is registered to you, and you are logged in.\r\n",
        )
        output = self.stop(server)
        self.assertIn(b"Carol registered", output)
        self.assertNotIn(PASSWORD.encode(), output)
        stored = database.read_bytes()
        self.assertIn(b"$argon2id$", stored)
        self.assertNotIn(PASSWORD.encode(), stored)

        server, port = self.start(database)
        client = SocketClient(self, port)
        client.welcome()
        client.send(b"/nick carol\n")
        self.assertEqual(
            client.read_line(), refused_as_registered("carol").encode() + b"\r\n"
        )
        client.send(f"/login carol {PASSWORD}\n".encode())
        self.assertEqual(
            [client.read_line(), client.read_line()],
            [line.encode() + b"\r\n" for line in logged_in("Carol")],
        )
        self.assertNotIn(PASSWORD.encode(), self.stop(server))
