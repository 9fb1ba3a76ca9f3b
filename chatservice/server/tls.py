"""
TLS listeners whose certificate and key can be re-read without a restart.

Certificates expire every few months (every few weeks with ACME), and
restarting a chat server to renew one drops everybody. A listener made from
an C{ssl:} endpoint string therefore gets a L{ReloadableCertificate} in place
of the fixed L{CertificateOptions} Twisted builds: new connections use
whatever certificate was loaded last, connections already open keep theirs.
"""

from __future__ import annotations

from typing import Any

from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IOpenSSLServerConnectionCreator,
    IStreamServerEndpoint,
)
from twisted.internet.ssl import CertificateOptions
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from zope.interface import implementer

log = Logger()


def _load(reactor: Any, description: str) -> CertificateOptions:
    """
    Read the certificate and key that the endpoint string C{description}
    names, and check that they make a usable TLS context (a key that does
    not match its certificate fails here). Blocks: files are read.
    """
    endpoint = endpoints.serverFromString(reactor, description)
    options: CertificateOptions = endpoint._sslContextFactory
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

    @classmethod
    def install(
        cls, reactor: Any, endpoint: IStreamServerEndpoint, description: str
    ) -> ReloadableCertificate | None:
        """
        Make the C{ssl:} listener C{endpoint}, parsed from C{description},
        take its certificate from a new L{ReloadableCertificate}, and return
        that; return None for an endpoint of any other kind.

        L{SSL4ServerEndpoint} has no public way to change its certificate
        options, so this sets the attribute that holds them; the tests check
        that the attribute is still there.
        """
        if not isinstance(endpoint, endpoints.SSL4ServerEndpoint):
            return None
        reloadable = cls(reactor, description, endpoint._sslContextFactory)
        endpoint._sslContextFactory = reloadable
        return reloadable

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(self.current.getContext(), None)

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
            self.reactor,
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
