"""
What a C{tcp:}, C{tcp6:} or C{ssl:} endpoint string asks for, read without
listening.

Twisted parses an endpoint string into an endpoint whose one public
operation is C{listen}, which calls the reactor's C{listenTCP} or
C{listenSSL} with the port number, backlog, interface and, for C{ssl:}, the
certificate options. Two things need those arguments before anything
listens: the options check the port number (the kernel would take 99999
for an C{OverflowError}), and a TLS listener is built as a plain TCP port
with the certificate kept apart, so that it can be re-read
(L{chatservice.server.tls}). L{tcp_port} gets them by giving the endpoint a
stand-in reactor that records the call instead of making it: Twisted's own
parser and defaults, through public interfaces only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import endpoints
from twisted.internet.protocol import Factory
from twisted.internet.ssl import CertificateOptions

# The endpoint types whose listen() is one listenTCP or listenSSL call.
TCP_ENDPOINTS = (
    endpoints.TCP4ServerEndpoint,
    endpoints.TCP6ServerEndpoint,
    endpoints.SSL4ServerEndpoint,
)

HIGHEST_PORT = 65535


@dataclass(frozen=True, slots=True)
class TCPPort:
    """
    The arguments an endpoint string gives C{listenTCP} or C{listenSSL}.

    @ivar tls: the certificate options of an C{ssl:} string; None for
        C{tcp:} and C{tcp6:}.
    """

    number: int
    backlog: int
    interface: str
    tls: CertificateOptions | None = None


class _Recorder:
    """
    Stands in for the reactor while an endpoint listens: keeps the
    arguments of its C{listenTCP} or C{listenSSL} call and listens on
    nothing.
    """

    port: TCPPort | None = None

    def listenTCP(
        self, port: int, factory: Any, backlog: int = 50, interface: str = ""
    ) -> None:
        self.port = TCPPort(port, backlog, interface)

    def listenSSL(
        self,
        port: int,
        factory: Any,
        contextFactory: CertificateOptions,
        backlog: int = 50,
        interface: str = "",
    ) -> None:
        self.port = TCPPort(port, backlog, interface, contextFactory)


def tcp_port(description: str) -> TCPPort | None:
    """
    The port, backlog, interface and (for C{ssl:}) certificate options
    that the endpoint string C{description} names; None if it is not a
    C{tcp:}, C{tcp6:} or C{ssl:} string. Raises whatever
    L{endpoints.serverFromString} raises for it. Blocks for C{ssl:}: the
    certificate and key files are read.
    """
    recorder = _Recorder()
    endpoint = endpoints.serverFromString(recorder, description)
    if not isinstance(endpoint, TCP_ENDPOINTS):
        return None
    # listen() calls the recorder at once, as it calls a reactor.
    endpoint.listen(Factory())
    return recorder.port


def port_problem(description: str) -> str | None:
    """
    Why the C{tcp:}, C{tcp6:} or C{ssl:} endpoint string C{description}
    cannot listen on the port it names, or None if the port is in range.
    """
    port = tcp_port(description)
    if port is not None and not 0 <= port.number <= HIGHEST_PORT:
        return f"port {port.number} is not between 0 and {HIGHEST_PORT}"
    return None
