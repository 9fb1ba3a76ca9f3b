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
from dataclasses import dataclass

from chatservice.core import names

# The longest mask, in characters: more than any nick!user@host needs.
MASK_MAX = 200

# The host every IRC user is shown with (see the IRC renderer).
CLOAK = "chatservice"

ACCOUNT_PREFIX = "$a:"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BadMask(ValueError):
    """The text is not a mask; the message says why."""


@dataclass(frozen=True, slots=True)
class Identity:
    """
    What masks are matched against: a member's folded nickname, user name
    (IRC's C{USER}, else the nickname), address (the peer's IP, "" if not
    known) and folded account (None if not logged in).
    """

    nick: str
    user: str
    address: str
    account: str | None


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

    __slots__ = ("_account", "_host", "_network", "_nick", "_user", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._account: re.Pattern[str] | None = None
        self._nick = self._user = self._host = None
        self._network: Network | None = None
        if text.startswith(ACCOUNT_PREFIX):
            self._account = _glob(text[len(ACCOUNT_PREFIX) :])
            return
        nick, _, rest = text.partition("!")
        user, _, host = rest.partition("@")
        self._nick = _glob(nick)
        self._user = _glob(user)
        self._network = _network(host)
        self._host = _glob(host)

    @property
    def is_account(self) -> bool:
        return self._account is not None

    def matches(self, who: Identity) -> bool:
        if self._account is not None:
            return who.account is not None and bool(
                self._account.fullmatch(who.account)
            )
        assert self._nick is not None and self._user is not None
        if not self._nick.fullmatch(who.nick):
            return False
        if not self._user.fullmatch(who.user.casefold()):
            return False
        return self._host_matches(who.address)

    def _host_matches(self, address: str) -> bool:
        assert self._host is not None
        if self._host.fullmatch(CLOAK):
            return True
        if not address:
            return False
        if self._network is not None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return False
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            return ip.version == self._network.version and ip in self._network
        return bool(self._host.fullmatch(address.casefold()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mask) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"<Mask {self.text!r}>"


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
