"""
Registered nicknames: who may use them, and how they prove it.

A password is hashed with argon2id (argon2-cffi's recommended parameters,
tens of milliseconds and 64 MiB of memory a hash, on purpose) in a thread,
never on the reactor thread, so a login does not stall anyone else's chat.
At most L{HASHING_AT_ONCE} hashes run at a time: that bounds their memory,
and a crowd of logins waits in line instead of starving the process.

Guessing is limited twice: each connection, and each account across all
connections, has a budget of failed logins that refills slowly. Only
failures spend it. The per-account limit means a guesser can make the
owner wait to log in, but never let the guesser in; we take that trade, as
IRC services do.

Passwords are never logged, stored, echoed or kept after the hash.

Several servers may share one database (PostgreSQL). Then the accounts in
memory are a cache: a login, a registration and a password change first
read the account as the database has it now, through C{lookup} (off the
reactor thread, like everything that touches the database), so that an
account registered, or a password changed, on another server counts here.
If the database cannot be read, they fail with L{errors.StoreUnavailable}
rather than trust a copy that may be stale: a password changed because it
leaked must not keep working on some server. A registration is stored only
if the name is nobody's in the database (the store's insert does nothing
on a conflict), so a name is registered once across every server.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.internet.defer import Deferred, DeferredSemaphore, succeed
from twisted.logger import Logger

from chatservice.core import errors, events, names
from chatservice.core.chat import Chat
from chatservice.core.flood import TokenBucket
from chatservice.core.rooms import Member

log = Logger()

T = TypeVar("T")

PASSWORD_MIN = 8
PASSWORD_MAX = 128
HASHING_AT_ONCE = 2
# Failed logins: a burst, then one more every so many seconds.
CONNECTION_FAILURES = 3
CONNECTION_REFILL = 10.0
ACCOUNT_FAILURES = 5
ACCOUNT_REFILL = 30.0


@dataclass(frozen=True)
class Account:
    nick: str
    password_hash: str


class Saver(Protocol):
    """
    Stores an account: a C{new} one only if its name is nobody's yet,
    firing whether it stored it; otherwise the account's new password hash.
    """

    def __call__(
        self, nick_key: str, nick: str, password_hash: str, now: float, new: bool
    ) -> Deferred[bool]: ...


class Lookup(Protocol):
    """The account of a folded nickname as the database has it now, if any."""

    def __call__(self, nick_key: str) -> Deferred[Account | None]: ...


class Runner(Protocol):
    def __call__(self, f: Callable[..., T], *args: Any) -> Deferred[T]: ...


def check_password(
    password: str, shortest: int = PASSWORD_MIN, longest: int = PASSWORD_MAX
) -> None:
    if not shortest <= len(password) <= longest:
        raise errors.BadPassword(shortest, longest)


class Accounts:
    """
    The accounts, in memory (read from the database at start), the login
    commands' logic, and the limits on guessing.

    @param in_thread: runs a function off the reactor thread and returns a
        Deferred of its result.
    @param save: stores an account (L{Saver}); fires once it is on disk.
    @param clock: seconds, for the guessing limits.
    @param lookup: reads an account from a database other servers share
        (L{Lookup}); None when the accounts in memory are all there are
        (one server, SQLite).
    @param password_min: the fewest characters a new password may have.
    @param password_max: the most characters a new password may have.
    """

    def __init__(
        self,
        chat: Chat,
        in_thread: Runner,
        save: Saver,
        clock: Callable[[], float],
        accounts: dict[str, Account] | None = None,
        hasher: PasswordHasher | None = None,
        password_min: int = PASSWORD_MIN,
        password_max: int = PASSWORD_MAX,
        lookup: Lookup | None = None,
    ) -> None:
        self.chat = chat
        self.in_thread = in_thread
        self.save = save
        self.lookup = lookup
        # Told of each account registered here, for the other processes of
        # a cluster (which then L{learn} it).
        self.announce: Callable[[str], object] | None = None
        self.clock = clock
        self.accounts: dict[str, Account] = accounts if accounts is not None else {}
        self.hasher = hasher if hasher is not None else PasswordHasher()
        self.password_min = password_min
        self.password_max = password_max
        self._hashing = DeferredSemaphore(HASHING_AT_ONCE)
        # Keyed by who asks: a member, or a connection that is not one yet
        # (an IRC client logging in as it registers).
        self._by_connection: weakref.WeakKeyDictionary[object, TokenBucket] = (
            weakref.WeakKeyDictionary()
        )
        self._by_account: dict[str, TokenBucket] = {}
        self._busy: weakref.WeakSet[object] = weakref.WeakSet()

    # Commands

    async def register(self, member: Member, password: str) -> None:
        check_password(password, self.password_min, self.password_max)
        key = member.folded
        if key in self.accounts:
            raise errors.AlreadyRegistered(member.nick)
        if names.is_guest_nick(member.nick):
            raise errors.GuestNick()
        nick = member.nick
        async with self._task(member):
            if await self._current(key, "register") is not None:
                raise errors.AlreadyRegistered(nick)
            password_hash = await self._hash(password)
            if key in self.accounts:
                raise errors.RegisteredMeanwhile(nick)
            # Held from now on, so nobody can take the name while it is
            # being written.
            held = self.accounts[key] = Account(nick, password_hash)
            try:
                stored = await self.save(key, nick, password_hash, self.clock(), True)
            except Exception:
                self._unhold(key, held)
                log.failure("Saving the account {account} failed", account=nick)
                raise errors.NotSaved("register") from None
            if not stored:
                # Another server sharing the database has it.
                self._unhold(key, held)
                log.info(
                    "{account} was registered by another server meanwhile",
                    account=nick,
                )
                raise errors.RegisteredMeanwhile(nick)
        log.info("{account} registered", account=nick)
        if self.announce is not None:
            self.announce(key)
        if member.connected:
            self.chat.log_in(member, nick)
            self.chat.tell(member, events.Registered(nick))

    async def login(self, member: Member, nick: str, password: str) -> None:
        key = names.fold(nick)
        known = self.accounts.get(key)
        if known is None and self.lookup is None:
            raise errors.NotRegistered(nick)
        if member.account == key:
            raise errors.AlreadyLoggedIn(nick if known is None else known.nick)
        account = await self.authenticate(member, nick, password)
        log.info("{account} logged in", account=account.nick)
        if member.connected:
            self.chat.log_in(member, account.nick)
            self.chat.tell(member, events.LoggedIn(account.nick))

    async def authenticate(self, who: object, nick: str, password: str) -> Account:
        """
        The account C{nick}, if C{password} is its password; else a typed
        refusal, the failure counted against C{who} (a member, or a
        connection not yet one) and the account. Nobody is logged in: the
        caller decides what proving it allows (logging in, as L{login} and
        an IRC client registering do, or becoming a server operator).
        """
        key = names.fold(nick)
        if self.lookup is None and key not in self.accounts:
            raise errors.NotRegistered(nick)
        self._check_limits(who, key)
        async with self._task(who):
            account = await self._current(key, "login")
            if account is None:
                raise errors.NotRegistered(nick)
            ok = await self._verify(account, password)
            if not ok:
                self._failed(who, key)
                log.info(
                    "Failed login as {account}", account=account.nick, reason="password"
                )
                raise errors.WrongPassword(account.nick)
        return account

    def logout(self, member: Member) -> None:
        if member.account is None:
            raise errors.NotLoggedIn("logout")
        self.chat.log_out(member)

    async def change_password(self, member: Member, old: str, new: str) -> None:
        key = member.account
        if key is None:
            raise errors.NotLoggedIn("password")
        check_password(new, self.password_min, self.password_max)
        self._check_limits(member, key)
        async with self._task(member):
            account = await self._current(key, "password")
            if account is None:
                # Only a database edited by hand loses an account.
                raise errors.NotSaved("password")
            if not await self._verify(account, old):
                self._failed(member, key)
                raise errors.WrongPassword(None)
            password_hash = await self._hash(new)
            try:
                await self.save(key, account.nick, password_hash, self.clock(), False)
            except Exception:
                log.failure("Saving the account {account} failed", account=account.nick)
                raise errors.NotSaved("password") from None
            self.accounts[key] = Account(account.nick, password_hash)
        log.info("{account} changed password", account=account.nick)
        if member.connected:
            self.chat.tell(member, events.PasswordChanged())

    # The database

    async def _current(
        self, key: str, what: Literal["login", "register", "password"]
    ) -> Account | None:
        """
        The account C{key} as it is now: from memory when memory holds them
        all (no C{lookup}); else read through C{lookup}, and kept in memory.
        A name not stored yet may be held in memory by a registration under
        way here. Raises L{errors.StoreUnavailable}, for C{what}, when the
        database cannot be read.
        """
        if self.lookup is None:
            return self.accounts.get(key)
        try:
            found = await self.lookup(key)
        except Exception as e:
            log.warn(
                "Looking up the account {account} failed: {error}",
                account=key,
                error=f"{type(e).__name__}: {' '.join(str(e).split())[:200]}",
            )
            raise errors.StoreUnavailable(what) from None
        if found is None:
            return self.accounts.get(key)
        self.accounts[key] = found
        return found

    def learn(self, key: str) -> Deferred[None]:
        """
        Another process registered the account C{key}: read it, so that
        its name counts as registered here too (nobody else may take it).
        """
        if self.lookup is None:
            return succeed(None)

        def found(account: Account | None) -> None:
            if account is not None:
                self.accounts[key] = account

        def failed(failure: Any) -> None:
            log.warn(
                "Could not read the account {account} registered elsewhere: {error}",
                account=key,
                error=failure.getErrorMessage(),
            )

        return self.lookup(key).addCallbacks(found, failed)

    def _unhold(self, key: str, held: Account) -> None:
        """Let go of the name a registration held, unless it changed since."""
        if self.accounts.get(key) == held:
            del self.accounts[key]

    # Guessing limits

    def _check_limits(self, who: object, key: str) -> None:
        now = self.clock()
        buckets = (self._by_connection.get(who), self._by_account.get(key))
        # Waiting as long as told must be enough: the longest wait counts.
        wait = max((b.wait(now) for b in buckets if b is not None), default=0.0)
        if wait > 0:
            raise errors.TooManyFailures(math.ceil(wait))

    def _failed(self, who: object, key: str) -> None:
        now = self.clock()
        mine = self._by_connection.get(who)
        if mine is None:
            mine = self._by_connection[who] = TokenBucket(
                1 / CONNECTION_REFILL, CONNECTION_FAILURES, now
            )
        theirs = self._by_account.get(key)
        if theirs is None:
            theirs = self._by_account[key] = TokenBucket(
                1 / ACCOUNT_REFILL, ACCOUNT_FAILURES, now
            )
        mine.take(1, now)
        theirs.take(1, now)

    # Hashing, off the reactor thread

    def _task(self, who: object) -> _Task:
        return _Task(self, who)

    async def _hash(self, password: str) -> str:
        return await self._hashing.run(self.in_thread, self.hasher.hash, password)

    async def _verify(self, account: Account, password: str) -> bool:
        ok: bool = await self._hashing.run(
            self.in_thread, _verify, self.hasher, account.password_hash, password
        )
        return ok


def _verify(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class _Task:
    """
    One account command at a time per connection.
    """

    def __init__(self, accounts: Accounts, who: object) -> None:
        self.accounts = accounts
        self.who = who

    async def __aenter__(self) -> None:
        if self.who in self.accounts._busy:
            raise errors.Busy()
        self.accounts._busy.add(self.who)

    async def __aexit__(self, *exc: object) -> None:
        self.accounts._busy.discard(self.who)
