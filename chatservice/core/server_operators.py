"""
Server operators: the accounts the server's configuration names as such,
and which members have proved they hold one and so act as server operators.

An operator is an account, not a nickname or an address: the operator list
(C{twistd chat --operator ACCOUNT}) names accounts, and becoming one (IRC's
C{OPER name password}) checks that account's password with the accounts'
own hashing and guessing limits (L{Accounts.authenticate}). The status
belongs to the member that proved it, for as long as it is connected or
until it gives the status up; it is not stored.

This is the first slice of what server operators may do (issue 14): who is
one, for every front end to show (IRC's user mode C{+o}, C{WHOIS} 313,
C{LUSERS} 252). The powers come later and ask L{ServerOperators.is_operator}.

No I/O, as in the rest of the core: the hashing runs wherever the accounts'
C{in_thread} runs it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

from twisted.logger import Logger

from chatservice.core import errors, events, names
from chatservice.core.accounts import Accounts
from chatservice.core.chat import Chat
from chatservice.core.rooms import Member

log = Logger()


class ServerOperators:
    """
    Who may become a server operator, and who is one.

    @param chat: the chat the operators are members of.
    @param accounts: the accounts, whose passwords prove an operator; None
        if the server keeps none (then nobody can become one).
    @param named: the names of the accounts that are operators, in any
        case.
    """

    def __init__(
        self, chat: Chat, accounts: Accounts | None, named: Iterable[str] = ()
    ) -> None:
        self.chat = chat
        self.accounts = accounts
        self.named = frozenset(names.fold(name) for name in named)
        # Members drop out when they disconnect and are collected; the
        # count skips those gone but not yet collected.
        self._up: weakref.WeakSet[Member] = weakref.WeakSet()

    def is_operator(self, member: Member) -> bool:
        return member in self._up

    def online(self) -> int:
        """How many connected members are server operators."""
        return sum(1 for member in self._up if member.connected)

    async def oper(self, member: Member, name: str, password: str) -> None:
        """
        Make C{member} a server operator if C{name} is an operator account
        and C{password} its password, and tell it so. A name that is not
        an operator account is refused before any password is hashed.
        """
        accounts = self.accounts
        key = names.fold(name)
        if accounts is None or key not in self.named or key not in accounts.accounts:
            log.info(
                "{nick} failed to become a server operator as {name}",
                nick=member.nick,
                name=name,
                reason="not an operator account",
            )
            raise errors.NotServerOperator(name)
        # The connection's guessing budget is the one its logins spend.
        account = await accounts.authenticate(member.session, name, password)
        if not member.connected:
            return
        log.info(
            "{nick} is now a server operator, as {account}",
            nick=member.nick,
            account=account.nick,
        )
        self._up.add(member)
        self.chat.tell(member, events.ServerOperatorUp())

    def deoper(self, member: Member) -> None:
        """
        C{member} gives up its server operator status, if it had it.
        """
        if member not in self._up:
            return
        self._up.discard(member)
        log.info("{nick} is no longer a server operator", nick=member.nick)
        self.chat.tell(member, events.ServerOperatorDown())
