"""
Ban and mute masks: what a moderator types to say whom a ban or a mute is
for, and whether a member is one of them.

One syntax for every front end, IRC's, because IRC users already type it
and the others lose nothing by it:

  - C{$a:account}: whoever is logged in as an account matching the glob
    (IRC's extended ban, as InspIRCd, Solanum and Ergo spell it);
  - C{nick!user@host}, any part a glob, missing parts C{*}: C{*@10.0.0.7}
    is C{*!*@10.0.0.7}, C{bob!x} is C{bob!x@*}; the host may also be a
    network, C{10.0.0.0/8} or C{2001:db8::/32};
  - a bare word: a nickname glob, C{word!*@*}.

A host matches the member's real address or the cloak every IRC user is
shown with (C{chatservice}), so that a mask copied from what IRC shows
works too. Nicknames and accounts compare as the chat compares names
(L{names.fold}: Unicode case and width folded), user names and hosts
case-insensitively.

Matching is a compiled regular expression per mask, made once when the mask
is set; masks are checked when someone enters a room or is renamed, never
per line delivered.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, MutableMapping
from typing import Generic, TypeVar

from chatservice.core import names

# The longest mask, in characters: more than any nick!user@host needs.
MASK_MAX = 200

# The host every IRC user is shown with (see the IRC renderer).
CLOAK = "chatservice"

ACCOUNT_PREFIX = "$a:"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BadMask(ValueError):
    """The text is not a mask; the message says why."""


IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip(address: str) -> IP | None:
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class Identity:
    """
    What masks are matched against: a member's folded nickname, user name
    (IRC's C{USER}, else the nickname), address (the peer's IP, "" if not
    known) and folded account (None if not logged in). Made once per check
    and matched against every mask of a list, so what every mask would
    otherwise redo (folding, reading the address) is done here, once.
    """

    __slots__ = ("account", "address", "ip", "nick", "user")

    def __init__(self, nick: str, user: str, address: str, account: str | None) -> None:
        self.nick = nick
        self.user = user.casefold()
        self.address = address.casefold()
        self.account = account
        self.ip = _ip(address)

    def __repr__(self) -> str:
        return f"<Identity {self.nick}!{self.user}@{self.address} {self.account}>"


# A part of a mask: None matches anything, a string only itself, a pattern
# what its glob does. Most masks are mostly exact or C{*}, and comparing a
# string costs a tenth of running a pattern.
Part = str | re.Pattern[str] | None


def _glob(pattern: str) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def _part(pattern: str) -> Part:
    if pattern.strip("*") == "":
        return None
    if "*" not in pattern and "?" not in pattern:
        return pattern
    return _glob(pattern)


def _is(part: Part, value: str) -> bool:
    if part is None:
        return True
    if type(part) is str:
        return part == value
    return part.fullmatch(value) is not None  # type: ignore[union-attr]


def _network(host: str) -> Network | None:
    if "/" not in host:
        return None
    try:
        return ipaddress.ip_network(host, strict=False)
    except ValueError:
        raise BadMask(f"{host} is not a network") from None


class Mask:
    """
    A parsed mask. C{text} is its canonical spelling, the one lists show
    and removal compares (so C{BOB}, C{bob!*@*} and C{Bob!*@*} are one).
    """

    __slots__ = (
        "_account",
        "_host",
        "_network",
        "_nick",
        "_user",
        "is_account",
        "text",
    )

    def __init__(self, text: str) -> None:
        self.text = text
        self.is_account = text.startswith(ACCOUNT_PREFIX)
        self._account: Part = None
        self._nick: Part = None
        self._user: Part = None
        self._host: Part = None
        self._network: Network | None = None
        if self.is_account:
            self._account = _part(text[len(ACCOUNT_PREFIX) :])
            return
        nick, _, rest = text.partition("!")
        user, _, host = rest.partition("@")
        self._nick = _part(nick)
        self._user = _part(user)
        self._network = _network(host)
        self._host = _part(host)

    def matches(self, who: Identity) -> bool:
        if self.is_account:
            account = who.account
            return account is not None and _is(self._account, account)
        if not _is(self._nick, who.nick) or not _is(self._user, who.user):
            return False
        host = self._host
        if host is None:
            return True
        network = self._network
        if network is not None:
            ip = who.ip
            return ip is not None and ip.version == network.version and ip in network
        if _is(host, CLOAK):
            return True
        return who.address != "" and _is(host, who.address)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mask) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"<Mask {self.text!r}>"


V = TypeVar("V")


def _bucket(mask: Mask) -> tuple[str, str] | None:
    """
    Where a list files C{mask} for a quick look-up: by its exact account,
    nickname or host, whichever it has first; None if it has none (then
    every check tries it).
    """
    if mask.is_account:
        account = mask._account
        return ("a", account) if type(account) is str else None
    if type(mask._nick) is str:
        return ("n", mask._nick)
    if type(mask._host) is str and mask._network is None:
        return ("h", mask._host)
    return None


class MaskList(MutableMapping[str, tuple[Mask, V]], Generic[V]):
    """
    A list of masks (a room's bans, say), by canonical text, each with
    what the list keeps of it (who set it, until when).

    Most masks name one nickname, host or account exactly; the list files
    those under it, so that L{matching} looks at the few masks that could
    match someone, not every one: entering a room with a thousand bans
    costs a few look-ups and the masks with globs.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Mask, V]] = {}
        self._buckets: dict[tuple[str, str], dict[str, Mask]] = {}
        self._rest: dict[str, Mask] = {}

    def __getitem__(self, key: str) -> tuple[Mask, V]:
        return self._entries[key]

    def __setitem__(self, key: str, value: tuple[Mask, V]) -> None:
        if key in self._entries:
            del self[key]
        self._entries[key] = value
        bucket = _bucket(value[0])
        where = self._rest if bucket is None else self._buckets.setdefault(bucket, {})
        where[key] = value[0]

    def __delitem__(self, key: str) -> None:
        mask = self._entries.pop(key)[0]
        bucket = _bucket(mask)
        if bucket is None:
            del self._rest[key]
            return
        filed = self._buckets[bucket]
        del filed[key]
        if not filed:
            del self._buckets[bucket]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def matching(self, who: Identity) -> Iterator[tuple[Mask, V]]:
        """The entries whose mask matches C{who}."""
        buckets = self._buckets
        if buckets:
            keys = [("n", who.nick), ("h", who.address)]
            if who.address != CLOAK:
                keys.append(("h", CLOAK))
            if who.account is not None:
                keys.append(("a", who.account))
            for key in keys:
                filed = buckets.get(key)
                if filed:
                    for text, mask in filed.items():
                        if mask.matches(who):
                            yield self._entries[text]
        for text, mask in self._rest.items():
            if mask.matches(who):
                yield self._entries[text]


def _clean(text: str) -> str:
    if not text:
        raise BadMask("a mask cannot be empty")
    if len(text) > MASK_MAX:
        raise BadMask(f"a mask is at most {MASK_MAX} characters")
    if not text.isprintable() or " " in text or "," in text:
        raise BadMask("a mask cannot hold spaces, commas or control characters")
    return text


def parse_mask(text: str) -> Mask:
    """
    The mask C{text} spells, canonical; raises L{BadMask} if it is none.
    """
    text = _clean(text.strip())
    if text[:3].lower() == ACCOUNT_PREFIX:
        account = text[3:]
        if not account:
            raise BadMask("an account mask needs an account: $a:name")
        return Mask(_clean(ACCOUNT_PREFIX + names.fold(account)))
    if text.startswith("$"):
        raise BadMask("the only extended mask is $a:account")
    nick, bang, rest = text.partition("!")
    if not bang and "@" in nick:
        nick, _, host = nick.partition("@")
        user = "*"
    else:
        user, _, host = rest.partition("@")
    if "!" in user or "@" in host or "!" in host:
        raise BadMask("a mask is nick!user@host, each part once")
    nick = names.fold(nick) if nick else "*"
    # Folding may make what was one character several, or a space.
    user = (user or "*").casefold()
    host = (host or "*").casefold()
    return Mask(_clean(f"{nick}!{user}@{host}"))
