"""
Server bans: accounts and addresses the whole server refuses, with an
optional expiry and a reason, for server operators to set.

A ban's mask is one of the room bans' masks (L{chatservice.core.masks},
one matcher for both), narrowed to what a server ban is about, who
connects:

  - C{$a:NAME}: the account C{NAME} (IRC's extban spelling); C{*} and
    C{?} may glob.
  - an address: C{1.2.3.4}, C{2001:db8::1}, a CIDR block C{10.0.0.0/8},
    or a glob of the address's text C{10.0.*}; each may be written bare,
    as C{*@HOST} or as C{*!*@HOST}, as IRC users type K-lines, and is kept
    as C{*!*@HOST}. A nickname or user part other than C{*} is refused
    (nicknames change; use a room ban for them), and so is a host that is
    not an address or that matches every member (C{*}, C{0.0.0.0/0}, or
    the cloak C{chatservice} every IRC user is shown with).

Masks are kept in a canonical form (C{$a:folded}, C{*!*@address}), the key
of the list, so one ban cannot be set twice under two spellings. An address
ban is checked when a connection is admitted, before anything is read from
it; an account ban when a member logs in (or registers with IRC with an
account). Connections without an IP address (UNIX sockets) match no address
ban.

The list is bounded (L{MAX_BANS}); checking a connection costs a dictionary
look-up for exact addresses and accounts, and a walk of the wide masks
(blocks and globs) only, never anything per message. Expired bans are
dropped when next met.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from twisted.logger import Logger

from chatservice.core import errors, names
from chatservice.core.masks import BadMask, Identity, Mask, parse_mask
from chatservice.core.rooms import Member

log = Logger()

# Server bans kept at most; a full list refuses new ones.
MAX_BANS = 10_000

ACCOUNT = "$a:"
ANY_HOST = "*!*@"

# What an address host may hold: IP digits, separators, globs, a prefix.
_ADDRESS_CHARS = frozenset("0123456789abcdef.:*?/")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

HOW = (
    "a server ban is an address (1.2.3.4, 10.0.0.0/8, *@10.0.*) or an account ($a:name)"
)


@dataclass(frozen=True, slots=True)
class ServerBan:
    """
    A server ban: C{mask} (canonical), set by C{by} (as the audit log
    names actors) at C{at}, until C{expires} (None: for ever), for
    C{reason} (may be empty).
    """

    mask: str
    by: str
    at: float
    expires: float | None
    reason: str

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now


def ip_of(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IP C{address} names, an IPv4-mapped IPv6 address as IPv4."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_text(address: str) -> str:
    """
    C{address} as masks match it: an IP's canonical text, or "" for no IP.
    """
    try:
        return str(ip_of(address))
    except ValueError:
        return ""


def _wild(text: str) -> bool:
    return "*" in text or "?" in text


def is_exact(mask: Mask) -> bool:
    """Whether C{mask} matches one account or address only (a look-up finds it)."""
    host = mask.text.removeprefix(ACCOUNT).removeprefix(ANY_HOST)
    return not _wild(host) and "/" not in host


def by_address(address: str) -> Identity:
    """What a server ban matches a connection from C{address} by."""
    return Identity("", "", address_text(address), None)


def by_account(account: str | None) -> Identity:
    """What a server ban matches a login as C{account} by."""
    return Identity("", "", "", None if account is None else names.fold(account))


# No one: matched only by a mask that matches anyone shown the cloak.
_NOBODY = Identity("", "", "", None)


def parse_server_mask(text: str) -> Mask:
    """
    The server ban mask C{text}, checked and made canonical; raises
    L{errors.BadMask} saying why it is none.
    """
    typed = text.strip()
    shown = typed[:64]
    if typed[:3].lower() != ACCOUNT and "!" not in typed and "@" not in typed:
        # A bare word is an address here (a room ban reads it as a nickname).
        typed = ANY_HOST + typed
    try:
        mask = parse_mask(typed)
    except BadMask as e:
        raise errors.BadMask(shown, str(e)) from None
    if mask.is_account:
        if not mask.text[len(ACCOUNT) :].strip("*?"):
            raise errors.BadMask(shown, "that matches every account")
        return mask
    nick, _, rest = mask.text.partition("!")
    user, _, host = rest.partition("@")
    if nick != "*" or user != "*":
        raise errors.BadMask(shown, HOW)
    return parse_mask(ANY_HOST + _address_host(shown, host))


def _address_host(shown: str, host: str) -> str:
    """The canonical text of the address C{host}; refuses hosts that are none."""
    if not host or not set(host) <= _ADDRESS_CHARS:
        raise errors.BadMask(shown, HOW)
    # A host glob matching the cloak every IRC user is shown with matches
    # everyone a room ban would; as a server ban it is refused with the rest.
    if not host.strip("*?.:/") or parse_mask(ANY_HOST + host).matches(_NOBODY):
        raise errors.BadMask(shown, "that matches every address")
    if _wild(host):
        if "/" in host:
            raise errors.BadMask(shown, "a CIDR block cannot have wildcards")
        return host
    try:
        if "/" not in host:
            return str(ip_of(host))
        network = ipaddress.ip_network(host, strict=False)
    except ValueError:
        raise errors.BadMask(shown, HOW) from None
    if network.prefixlen == 0:
        raise errors.BadMask(shown, "that matches every address")
    if network.num_addresses == 1:
        return str(network.network_address)
    return str(network)


def address_of(member: Member) -> str:
    """The IP address C{member} connected from, as masks match it; "" if unknown."""
    return address_text(member.address)


def quit_reason(ban: ServerBan) -> str:
    """What the rooms of a member a ban disconnects are told."""
    return f"Banned ({ban.reason})" if ban.reason else "Banned"


class ServerBans:
    """
    The server bans in force, oldest first.

    @param clock: the wall clock bans are dated and expire by.
    @param save: stores a ban (fire and forget); None keeps them in memory.
    @param delete: forgets the stored ban on a mask (fire and forget).
    @param limit: how many bans the list holds at most.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        save: Callable[[ServerBan], object] | None = None,
        delete: Callable[[str], object] | None = None,
        limit: int = MAX_BANS,
    ) -> None:
        self.clock = clock
        self.save = save
        self.delete = delete
        self.limit = limit
        # Told of each ban set or lifted here, for the other processes of a
        # cluster (which keep it with L{put} and L{lift}).
        self.announce_set: Callable[[ServerBan], object] | None = None
        self.announce_lifted: Callable[[str], object] | None = None
        self._bans: dict[str, tuple[ServerBan, Mask]] = {}
        # The bans that need a walk to match: blocks, globs.
        self._wide: dict[str, tuple[ServerBan, Mask]] = {}

    def __len__(self) -> int:
        return len(self._bans)

    def add(self, ban: ServerBan) -> ServerBan:
        """
        Put C{ban} in force (a ban on the same mask is replaced), stored.
        Raises L{errors.BadMask}, or L{errors.ServerBansFull} when full.
        """
        mask = parse_server_mask(ban.mask)
        if mask.text != ban.mask:
            raise errors.BadMask(ban.mask, "not in canonical form")
        if mask.text not in self._bans and len(self._bans) >= self.limit:
            self.prune()
            if len(self._bans) >= self.limit:
                raise errors.ServerBansFull(self.limit)
        self._put(ban, mask)
        if self.save is not None:
            self.save(ban)
        if self.announce_set is not None:
            self.announce_set(ban)
        return ban

    def put(self, ban: ServerBan) -> None:
        """
        Keep C{ban}, set by another process of the cluster (which stored
        it), in force here too.
        """
        try:
            mask = parse_server_mask(ban.mask)
        except errors.ChatError:
            log.warn("Ignored a server ban on {mask!r}", mask=ban.mask)
            return
        self._put(ban, mask)

    def lift(self, key: str) -> None:
        """Lift here the ban on C{key} another process lifted (and forgot)."""
        self._bans.pop(key, None)
        self._wide.pop(key, None)

    def _put(self, ban: ServerBan, mask: Mask) -> None:
        self._bans.pop(mask.text, None)
        self._bans[mask.text] = (ban, mask)
        if not is_exact(mask):
            self._wide[mask.text] = (ban, mask)

    def remove(self, text: str) -> ServerBan:
        """
        Lift the ban on the mask C{text} (as typed: made canonical first).
        Raises L{errors.NoSuchServerBan} if there is none in force.
        """
        mask = parse_server_mask(text)
        found = self._bans.get(mask.text)
        if found is None or found[0].expired(self.clock()):
            if found is not None:
                self._drop(mask.text)
            raise errors.NoSuchServerBan(mask.text)
        self._drop(mask.text)
        if self.announce_lifted is not None:
            self.announce_lifted(mask.text)
        return found[0]

    def _drop(self, key: str) -> None:
        self._bans.pop(key, None)
        self._wide.pop(key, None)
        if self.delete is not None:
            self.delete(key)

    def load(self, bans: Iterable[ServerBan]) -> None:
        """
        Take stored bans as if just set; one whose mask this server no
        longer reads is logged and left out, as is one expired.
        """
        now = self.clock()
        for ban in bans:
            try:
                mask = parse_server_mask(ban.mask)
            except errors.BadMask as e:
                log.warn(
                    "Ignoring the stored server ban {mask!r}: {reason}",
                    mask=ban.mask,
                    reason=e.reason,
                )
                continue
            if not ban.expired(now):
                self._put(replace(ban, mask=mask.text), mask)

    def entries(self) -> list[ServerBan]:
        """The bans in force, oldest first; expired ones are dropped."""
        self.prune()
        return [ban for ban, _ in self._bans.values()]

    def prune(self) -> None:
        now = self.clock()
        for key in [k for k, (ban, _) in self._bans.items() if ban.expired(now)]:
            self._drop(key)

    def _live(self, key: str) -> ServerBan | None:
        found = self._bans.get(key)
        if found is None:
            return None
        if found[0].expired(self.clock()):
            self._drop(key)
            return None
        return found[0]

    def _wide_match(self, who: Identity) -> ServerBan | None:
        now = self.clock()
        expired = []
        hit = None
        for key, (ban, mask) in self._wide.items():
            if not mask.matches(who):
                continue
            if ban.expired(now):
                expired.append(key)
                continue
            hit = ban
            break
        for key in expired:
            self._drop(key)
        return hit

    def address_ban(self, address: str) -> ServerBan | None:
        """The ban in force on the IP C{address}, if any."""
        address = address_text(address)
        if not address or not self._bans:
            return None
        found = self._live(ANY_HOST + address)
        if found is not None or not self._wide:
            return found
        return self._wide_match(by_address(address))

    def account_ban(self, account: str | None) -> ServerBan | None:
        """The ban in force on the account C{account} (any case), if any."""
        if account is None or not self._bans:
            return None
        found = self._live(ACCOUNT + names.fold(account))
        if found is not None or not self._wide:
            return found
        return self._wide_match(by_account(account))

    def member_ban(self, member: Member) -> ServerBan | None:
        """The ban in force on C{member}'s address or account, if any."""
        return self.address_ban(address_of(member)) or self.account_ban(member.account)
