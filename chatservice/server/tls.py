"""
TLS listeners: a plain TCP port, TLS done by L{TLSMemoryBIOFactory} around
the chat's factory, and a certificate and key that can be re-read without a
restart.

Certificates expire every few months (every few weeks with ACME), and
restarting a chat server to renew one drops everybody. An C{ssl:} endpoint
string is therefore taken apart (L{chatservice.server.ports}): the port,
interface and backlog make a C{tcp:} endpoint, and the certificate options
go into a L{ReloadableCertificate}, which the TLS factory asks for a
connection each time a client arrives. New connections use whatever
certificate was loaded last; connections already open keep theirs. This is
what Twisted's C{listenSSL} does itself, with the certificate held where
SIGHUP can replace it.
"""

from __future__ import annotations

from typing import Any

from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
)
from twisted.internet.ssl import CertificateOptions
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from chatservice.server.ports import TCPPort, tcp_port

log = Logger()


def _ssl_port(description: str) -> tuple[TCPPort, CertificateOptions]:
    """
    The port and the certificate options of the C{ssl:} endpoint string
    C{description}. Blocks: files are read.
    """
    port = tcp_port(description)
    if port is None or port.tls is None:
        raise ValueError(f"{description} is not an ssl: endpoint")
    return port, port.tls


def _load(description: str) -> CertificateOptions:
    """
    Read the certificate and key that the C{ssl:} endpoint string
    C{description} names, and check that they make a usable TLS context (a
    key that does not match its certificate fails here). Blocks: files are
    read.
    """
    _, options = _ssl_port(description)
    options.getContext()
    return options


def _subject(options: CertificateOptions) -> str:
    """
    Which certificate this is, for the log: its common name and expiry.
    """
    if options.certificate is None:
        return "no certificate"
    try:
        certificate = options.certificate.to_cryptography()
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        name = str(names[0].value) if names else "(no common name)"
        return (
            f"{name}, valid until {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    except Exception as e:
        return f"(unreadable: {e})"


@implementer(IOpenSSLServerConnectionCreator)
class ReloadableCertificate:
    """
    Makes each new server-side TLS connection with the certificate loaded
    last.

    @ivar description: the C{ssl:} endpoint string the files come from.
    @ivar current: the certificate options in use.
    """

    def __init__(self, reactor: Any, description: str, current: CertificateOptions):
        self.reactor = reactor
        self.description = description
        self.current = current

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(self.current.getContext(), None)

    def wrap(self, factory: IProtocolFactory) -> TLSMemoryBIOFactory:
        """
        C{factory}, its connections encrypted with this certificate: the
        current one when each connection is made.
        """
        return TLSMemoryBIOFactory(self, False, factory)

    def reload(self) -> Deferred[bool]:
        """
        Re-read the files, off the reactor thread, and use them for new
        connections if they make a working certificate; otherwise log why
        and keep the old one. Fires with whether the new one is in use.
        """
        d = deferToThreadPool(
            self.reactor,
            self.reactor.getThreadPool(),
            _load,
            self.description,
        )

        def loaded(options: CertificateOptions) -> bool:
            self.current = options
            log.info(
                "Reloaded the TLS certificate of {endpoint}: {subject}",
                endpoint=self.description,
                subject=_subject(options),
            )
            return True

        def failed(failure: Any) -> bool:
            log.error(
                "Could not reload the TLS certificate of {endpoint}; the old "
                "one stays in use: {error}",
                endpoint=self.description,
                error=failure.getErrorMessage() or failure.type.__name__,
            )
            return False

        return d.addCallbacks(loaded, failed)


def tls_listener(
    reactor: Any, description: str
) -> tuple[endpoints.TCP4ServerEndpoint, ReloadableCertificate]:
    """
    Take the C{ssl:} endpoint string C{description} apart: a TCP endpoint on
    its port, interface and backlog, and its certificate, which
    L{ReloadableCertificate.wrap} puts around a factory. Blocks: files are
    read.
    """
    port, options = _ssl_port(description)
    endpoint = endpoints.TCP4ServerEndpoint(
        reactor, port.number, port.backlog, port.interface
    )
    return endpoint, ReloadableCertificate(reactor, description, options)
