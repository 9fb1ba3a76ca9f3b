"""
Server operators: the accounts the server's configuration names as such,
and which members have proved they hold one and so act as server operators.

An operator is an account, not a nickname or an address: the operator list
(C{twistd chat --operator ACCOUNT}) names accounts, and becoming one (IRC's
C{OPER name password}) checks that account's password with the accounts'
own hashing and guessing limits (L{Accounts.authenticate}). The status
belongs to the member that proved it, for as long as it is connected or
until it gives the status up; it is not stored.

Their powers: disconnecting a member (L{ServerOperators.kill}), a notice
to everyone (L{ServerOperators.wall}), server bans on accounts and
addresses (L{ServerOperators.ban}, L{chatservice.core.server_bans}), and
reading the audit log, which every one of these actions is written to.
Everyone else asking is refused with L{errors.NoPrivileges}, and nothing
changes.

The operator list is the union of the accounts the command line names and
those of an operators file, which SIGHUP re-reads
(L{ServerOperators.set_listed}): a member whose account the list no longer
names loses the status at once.

No I/O, as in the rest of the core: the hashing runs wherever the accounts'
C{in_thread} runs it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

from twisted.logger import Logger

from chatservice.core import errors, events, names
from chatservice.core.accounts import Accounts
from chatservice.core.audit import AuditEntry
from chatservice.core.chat import Chat
from chatservice.core.durations import DURATION_MAX
from chatservice.core.rooms import Member
from chatservice.core.sanitize import safe
from chatservice.core.server_bans import (
    ServerBan,
    address_of,
    by_account,
    by_address,
    parse_server_mask,
    quit_reason,
)

log = Logger()

# The most audit entries one request reads back.
AUDIT_MAX = 200
# The most server bans one listing shows; the count says how many more.
LIST_SHOWN = 500
# The longest reason or notice kept, in characters.
REASON_MAX = 300


class ServerOperators:
    """
    Who may become a server operator, who is one, and what they may do.

    @param chat: the chat the operators are members of.
    @param accounts: the accounts, whose passwords prove an operator; None
        if the server keeps none (then nobody can become one).
    @param named: the names of the accounts that are operators, in any
        case (the command line's).
    @param listed: more of them (an operators file's), replaced by
        L{set_listed}.
    @ivar named: the folded names of every operator account.
    """

    def __init__(
        self,
        chat: Chat,
        accounts: Accounts | None,
        named: Iterable[str] = (),
        listed: Iterable[str] = (),
    ) -> None:
        self.chat = chat
        self.accounts = accounts
        self.configured = frozenset(names.fold(name) for name in named)
        self.named = self.configured | {names.fold(name) for name in listed}
        # Members drop out when they disconnect and are collected; the
        # count skips those gone but not yet collected. Each maps to the
        # account it proved, as its name is spelt.
        self._up: weakref.WeakKeyDictionary[Member, str] = weakref.WeakKeyDictionary()

    def is_operator(self, member: Member) -> bool:
        return member in self._up

    def online(self) -> int:
        """How many connected members are server operators."""
        return sum(1 for member in list(self._up.keys()) if member.connected)

    def set_listed(self, listed: Iterable[str]) -> None:
        """
        The operators file now names C{listed}: whoever is a server operator
        through an account no longer named is one no more, and is told.
        """
        self.named = self.configured | {names.fold(name) for name in listed}
        for member, account in list(self._up.items()):
            if names.fold(account) not in self.named:
                log.info(
                    "{nick} is no longer a server operator: {account} is not "
                    "named any more",
                    nick=member.nick,
                    account=account,
                )
                self.deoper(member)

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
        if not member.connected or names.fold(account.nick) not in self.named:
            return
        log.info(
            "{nick} is now a server operator, as {account}",
            nick=member.nick,
            account=account.nick,
        )
        self._up[member] = account.nick
        self.chat.audit.record(self.actor(member), "oper")
        self.chat.tell(member, events.ServerOperatorUp())

    def deoper(self, member: Member) -> None:
        """
        C{member} gives up its server operator status, if it had it.
        """
        if member not in self._up:
            return
        del self._up[member]
        log.info("{nick} is no longer a server operator", nick=member.nick)
        self.chat.tell(member, events.ServerOperatorDown())

    # Powers

    def actor(self, member: Member) -> str:
        """
        How the audit log names C{member}: its nickname, and the operator
        account it proved if that is another name.
        """
        account = self._up.get(member)
        if account is None or names.fold(account) == member.folded:
            return member.nick
        return f"{member.nick} ({account})"

    def _require(self, member: Member) -> None:
        if member not in self._up:
            raise errors.NoPrivileges()

    def kill(self, member: Member, nick: str, reason: str = "") -> None:
        """
        Disconnect the member called C{nick}: it is told it was killed by
        C{member}, and why; its rooms see it quit with
        C{Killed (by (reason))}, as IRC users expect.
        """
        self._require(member)
        target = self.chat.find(nick)
        reason = safe(reason)[:REASON_MAX] or "no reason given"
        by = member.nick
        log.info("{by} killed {nick}: {why}", by=by, nick=target.nick, why=reason)
        self.chat.audit.record(self.actor(member), "kill", target.nick, detail=reason)
        if target is not member:
            self.chat.tell(member, events.KillDone(target.nick, reason))
        self.chat.dismiss(
            target, events.Killed(by, reason), f"Killed ({by} ({reason}))"
        )

    def wall(self, member: Member, text: str) -> int:
        """
        Tell every connected member C{text}, from C{member}: rendered once
        per kind of front end. Returns how many were told.
        """
        self._require(member)
        text = safe(text)[: REASON_MAX * 2]
        if not text.strip():
            raise errors.NoText()
        self.chat.audit.record(self.actor(member), "wall", detail=text)
        return self.chat.fanout.tell_all(
            list(self.chat.members.values()), events.ServerNotice(member.nick, text)
        )

    def ban(
        self,
        member: Member,
        mask: str,
        duration: float | None = None,
        reason: str = "",
    ) -> ServerBan:
        """
        Ban C{mask} (see L{chatservice.core.server_bans}) from the server
        for C{duration} seconds (None: for ever), for C{reason}: members it
        matches are disconnected at once, told why (server operators are
        not: they can lift it). Replaces a ban on the same mask.
        """
        self._require(member)
        parsed = parse_server_mask(mask)
        if duration is not None and not 0 < duration <= DURATION_MAX:
            raise errors.BadDuration(f"{duration:g}")
        chat = self.chat
        bans = chat.server_bans
        now = bans.clock()
        entry = ServerBan(
            parsed.text,
            self.actor(member),
            now,
            None if duration is None else now + duration,
            safe(reason)[:REASON_MAX],
        )
        bans.add(entry)
        detail = entry.reason
        if duration is not None:
            detail = f"{detail} (for {duration:g} s)".lstrip()
        chat.audit.record(self.actor(member), "server-ban", entry.mask, detail=detail)
        matched = [
            each
            for each in chat.members.values()
            if each not in self._up
            and (
                parsed.matches(by_address(address_of(each)))
                or parsed.matches(by_account(each.account))
            )
        ]
        chat.tell(member, events.ServerBanAdded(entry, len(matched)))
        for each in matched:
            log.info(
                "{nick} disconnected by the server ban on {mask}",
                nick=each.nick,
                mask=entry.mask,
                reason="server ban",
            )
            chat.dismiss(
                each,
                events.Refused(errors.ServerBanned(entry.reason)),
                quit_reason(entry),
            )
        return entry

    def unban(self, member: Member, mask: str) -> ServerBan:
        """Lift the server ban on C{mask}."""
        self._require(member)
        entry = self.chat.server_bans.remove(mask)
        self.chat.audit.record(self.actor(member), "server-unban", entry.mask)
        self.chat.tell(member, events.ServerBanRemoved(entry.mask))
        return entry

    def bans(self, member: Member) -> None:
        """Tell C{member} the server bans in force, oldest first."""
        self._require(member)
        entries = self.chat.server_bans.entries()
        self.chat.tell(member, events.ServerBanList(entries[:LIST_SHOWN], len(entries)))

    def audit(self, member: Member, n: int = 20) -> list[AuditEntry]:
        """Tell C{member} the newest C{n} (at most L{AUDIT_MAX}) audit entries."""
        self._require(member)
        entries = self.chat.audit.recent(max(1, min(n, AUDIT_MAX)))
        self.chat.tell(member, events.AuditLog(entries))
        return entries
