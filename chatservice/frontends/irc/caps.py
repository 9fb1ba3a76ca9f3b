"""
IRCv3 capability negotiation: the capabilities the IRC front end offers,
and one connection's C{CAP} conversation (C{LS}, C{LIST}, C{REQ}, C{END}).

The table, L{CAPABILITIES}, is the one place a capability is declared;
adding one is adding an entry (and whatever the capability does, elsewhere).
A capability that changes how events are written (C{renders}) is part of
the key the factory picks a connection's renderer by, so that clients with
the same such capabilities share one renderer, and a room's line is
rendered once for each kind of client, never once per recipient.

Only the conversation is here: what each capability does is the renderer's
(tags, echo, batches) and the protocol's (labels).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# Capability names that the renderer and protocol test for.
BATCH = "batch"
CAP_NOTIFY = "cap-notify"
ECHO_MESSAGE = "echo-message"
LABELED_RESPONSE = "labeled-response"
MESSAGE_TAGS = "message-tags"
MULTI_PREFIX = "multi-prefix"
SASL = "sasl"
SERVER_TIME = "server-time"
USERHOST_IN_NAMES = "userhost-in-names"

# Bytes of capability names a CAP LS or LIST line carries before another
# line is started: well inside 512 with the server's name and the nick.
_LINE_ROOM = 380


@dataclass(frozen=True)
class Capability:
    """
    One capability the server may offer.

    @ivar value: what C{CAP LS 302} shows after C{=}, if anything (C{sasl}'s
        mechanisms, say).
    @ivar renders: enabling it changes the bytes a client is sent for the
        same event: part of the renderer's key.
    @ivar offered: whether a factory offers it (C{sasl} only with accounts,
        say); always, if None.
    """

    name: str
    value: str | None = None
    renders: bool = False
    offered: Callable[[Any], bool] | None = None


CAPABILITIES: dict[str, Capability] = {
    cap.name: cap
    for cap in (
        Capability(BATCH, renders=True),
        Capability(CAP_NOTIFY),
        Capability(ECHO_MESSAGE, renders=True),
        Capability(LABELED_RESPONSE),
        Capability(MESSAGE_TAGS, renders=True),
        # NAMES shows @+ for an operator with a voice.
        Capability(MULTI_PREFIX, renders=True),
        # SASL's value is its mechanisms (sasl.MECHANISMS); only a server
        # that keeps accounts offers it.
        Capability(SASL, "PLAIN", offered=lambda factory: factory.accounts is not None),
        Capability(SERVER_TIME, renders=True),
        Capability(USERHOST_IN_NAMES, renders=True),
    )
}


def offered(factory: object) -> dict[str, Capability]:
    """
    The capabilities C{factory} offers, by name, in the table's order.
    """
    return {
        name: cap
        for name, cap in CAPABILITIES.items()
        if cap.offered is None or cap.offered(factory)
    }


def rendering(enabled: Iterable[str]) -> frozenset[str]:
    """
    Of the capabilities C{enabled}, those that change rendering: the key a
    renderer is chosen by.
    """
    return frozenset(
        name for name in enabled if name in CAPABILITIES and CAPABILITIES[name].renders
    )


class Negotiation:
    """
    One connection's capabilities and its C{CAP} conversation.

    @ivar enabled: the capabilities the client has now.
    @ivar version: the highest C{CAP LS} version the client named (0: none;
        302 shows values and implies C{cap-notify}).
    @ivar started: the client began negotiating (C{LS} or C{REQ}) and has
        not yet said C{END}: registration waits.
    """

    def __init__(self, offer: dict[str, Capability]) -> None:
        self.offer = offer
        self.enabled: set[str] = set()
        self.version = 0
        self.started = False

    def ls(self, version: str | None) -> list[tuple[str, ...]]:
        """
        The parameters (after the nickname) of the C{CAP LS} reply lines.
        """
        if version is not None and version.isdigit():
            self.version = max(self.version, int(version))
        if self.version >= 302 and CAP_NOTIFY in self.offer:
            self.enabled.add(CAP_NOTIFY)
        words = [
            cap.name
            if cap.value is None or self.version < 302
            else f"{cap.name}={cap.value}"
            for cap in self.offer.values()
        ]
        return self._lines("LS", words)

    def listing(self) -> list[tuple[str, ...]]:
        """The parameters of the C{CAP LIST} reply lines."""
        return self._lines("LIST", [n for n in self.offer if n in self.enabled])

    def _lines(self, sub: str, words: list[str]) -> list[tuple[str, ...]]:
        groups: list[list[str]] = [[]]
        size = 0
        for word in words:
            if groups[-1] and size + len(word) + 1 > _LINE_ROOM:
                groups.append([])
                size = 0
            groups[-1].append(word)
            size += len(word) + 1
        # Every line but the last says more follow, when the client can
        # read that (302).
        more = ("*",) if self.version >= 302 else ()
        lines: list[tuple[str, ...]] = [
            (sub, *more, " ".join(group)) for group in groups[:-1]
        ]
        lines.append((sub, " ".join(groups[-1])))
        return lines

    def req(self, request: str) -> tuple[str, ...]:
        """
        Enable and disable (C{-name}) the capabilities in C{request}, all or
        none of them, and return the reply's parameters: C{ACK} or C{NAK}
        with the request as the client wrote it.
        """
        changes: list[tuple[str, bool]] = []
        for word in request.split():
            name = word.removeprefix("-")
            adding = not word.startswith("-")
            if name not in self.offer:
                return ("NAK", request)
            if not adding and name == CAP_NOTIFY and self.version >= 302:
                # Implied by 302: a client that asked for it cannot refuse.
                return ("NAK", request)
            changes.append((name, adding))
        for name, adding in changes:
            if adding:
                self.enabled.add(name)
            else:
                self.enabled.discard(name)
        return ("ACK", request)

    @property
    def rendering(self) -> frozenset[str]:
        """The enabled capabilities that choose the renderer."""
        return rendering(self.enabled)
