"""
The C{reuseport:} server endpoint: a TCP listener that sets
C{SO_REUSEPORT}, so that several C{twistd chat} processes on one host can
listen on one port and the kernel hands each new connection to one of them.

Twisted's C{tcp:} never sets C{SO_REUSEPORT} on a listening socket (its
C{tcp.Port} sets only C{SO_REUSEADDR}), and it has no option to. Rather
than subclass a private port class, L{ReusePortEndpoint} makes the socket
itself, sets both options, binds and listens, and hands the listening
descriptor to the reactor's public C{adoptStreamPort}; from then on it is
an ordinary Twisted TCP port (C{getHost}, C{stopListening}, the same
C{... starting on PORT} log line).

The string is C{reuseport:PORT[:interface=ADDR][:backlog=N]}, with
C{tcp:}'s meanings and defaults (every IPv4 address; a backlog of 50); an
IPv6 C{interface} listens on IPv6 (C{interface=\\:\\:1}). Port 0 asks
the kernel for a free port, which later listeners may then share.
L{ReusePortParser} is found by C{endpoints.serverFromString} through the
plugin in C{twisted/plugins/chat_reuseport.py}, so C{--port},
C{--irc-port}, C{--web} and C{--metrics} all take it. TLS over it is not
offered: C{ssl:} stays a plain C{tcp:} port with TLS.
"""

from __future__ import annotations

import socket
from typing import Any, cast

from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import Deferred, execute
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorCore,
    IReactorSocket,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.internet.protocol import ServerFactory
from twisted.plugin import IPlugin
from zope.interface import implementer

PREFIX = "reuseport"
SYNTAX = "reuseport:PORT[:interface=ADDR][:backlog=N]"
DEFAULT_BACKLOG = 50
HIGHEST_PORT = 65535

# None where the platform has no such option (Windows, say).
SO_REUSEPORT: int | None = getattr(socket, "SO_REUSEPORT", None)


@implementer(IStreamServerEndpoint)
class ReusePortEndpoint:
    """
    Listens on TCP C{port} at C{interface} with C{SO_REUSEADDR} and
    C{SO_REUSEPORT} set, through C{reactor.adoptStreamPort}.

    @ivar reactor: the reactor that adopts the listening socket.
    @ivar port: the port number; 0 for one the kernel chooses.
    @ivar interface: the address to bind; C{""} for every IPv4 address.
    @ivar backlog: the length of the accept queue.
    """

    def __init__(
        self,
        reactor: IReactorSocket,
        port: int,
        interface: str = "",
        backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        self.reactor = reactor
        self.port = port
        self.interface = interface
        self.backlog = backlog

    def __repr__(self) -> str:
        return (
            f"<ReusePortEndpoint port={self.port} "
            f"interface={self.interface!r} backlog={self.backlog}>"
        )

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        """
        Listen at once, as C{tcp:} does: the L{Deferred} has fired (or
        failed with L{CannotListenError}) when this returns.
        """
        return execute(self._listen, factory)

    def _listen(self, factory: IProtocolFactory) -> IListeningPort:
        if SO_REUSEPORT is None:
            raise CannotListenError(
                self.interface, self.port, "this system has no SO_REUSEPORT"
            )
        family = socket.AF_INET6 if isIPv6Address(self.interface) else socket.AF_INET
        try:
            address = self._address(family)
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as e:
            raise CannotListenError(self.interface, self.port, e) from None
        # The reactor keeps a duplicate of the descriptor; this one is ours
        # to close, whatever happens.
        with sock:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, SO_REUSEPORT, 1)
                sock.bind(address)
                sock.listen(self.backlog)
                sock.setblocking(False)
            except OSError as e:
                raise CannotListenError(self.interface, self.port, e) from None
            # Any protocol factory will do; Twisted's annotation asks for
            # more than its interface does.
            port: IListeningPort = self.reactor.adoptStreamPort(
                sock.fileno(), family, cast("ServerFactory[Any]", factory)
            )
        return port

    def _address(self, family: socket.AddressFamily) -> tuple[object, ...]:
        """
        What C{bind} takes: an IPv6 address goes through C{getaddrinfo},
        which fills in the flow and scope (C{fe80::1%eth0}), as C{tcp6:}
        does.
        """
        if family == socket.AF_INET6:
            found = socket.getaddrinfo(
                self.interface,
                self.port,
                family,
                socket.SOCK_STREAM,
                0,
                socket.AI_NUMERICHOST | socket.AI_PASSIVE,
            )
            return tuple(found[0][4])
        return (self.interface, self.port)


def _number(name: str, value: str, lowest: int, highest: int | None) -> int:
    """
    C{value} as a whole number from C{lowest} to C{highest}, or a
    C{ValueError} that says so in the words the options use for C{tcp:}.
    """
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a number") from None
    if highest is not None and not lowest <= number <= highest:
        raise ValueError(f"{name} {number} is not between {lowest} and {highest}")
    if number < lowest:
        raise ValueError(f"{name} {number} is less than {lowest}")
    return number


@implementer(IPlugin, IStreamServerEndpointStringParser)
class ReusePortParser:
    """
    Parses C{reuseport:PORT[:interface=ADDR][:backlog=N]} into a
    L{ReusePortEndpoint}. A bad port or backlog is a C{ValueError}, as
    C{endpoints.serverFromString} raises for a bad C{tcp:} string, so the
    options refuse it before anything starts.
    """

    prefix = PREFIX

    def parseStreamServer(
        self, reactor: IReactorCore, *args: object, **kwargs: object
    ) -> IStreamServerEndpoint:
        if len(args) != 1:
            raise ValueError(f"{PREFIX}: takes one port: {SYNTAX}")
        unknown = sorted(set(kwargs) - {"interface", "backlog"})
        if unknown:
            raise ValueError(f"{PREFIX}: no option {unknown[0]!r}: {SYNTAX}")
        if not IReactorSocket.providedBy(reactor):
            raise ValueError(f"{PREFIX}: this reactor cannot adopt a socket")
        return ReusePortEndpoint(
            cast(IReactorSocket, reactor),
            _number("port", str(args[0]), 0, HIGHEST_PORT),
            str(kwargs.get("interface", "")),
            _number("backlog", str(kwargs.get("backlog", DEFAULT_BACKLOG)), 1, None),
        )
