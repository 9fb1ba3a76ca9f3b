"""
TLS for C{chat-client}: endpoints that check the server's certificate, and a
failed handshake told in one line.

C{--tls HOST PORT} is spelt as the endpoint string C{tls:host=HOST:port=PORT},
so it and C{--connect tls:...} take the same path: Twisted's own C{tls:}
parser, which verifies the certificate against the platform's trust store and
the host name (or IP address) with C{service_identity}. Only C{--ca-file} and
C{--insecure} need an endpoint built here, because the C{tls:} syntax can name
a directory of CA files (C{trustRoots=DIR}) but not a single file, and cannot
turn verification off.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from OpenSSL import SSL, crypto
from service_identity import VerificationError
from twisted.internet import endpoints, ssl
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorCore,
    IStreamClientEndpoint,
)
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

if TYPE_CHECKING:
    # Not exported by twisted.internet.ssl, whose functions take it.
    from twisted.internet._sslverify import IOpenSSLTrustRoot

INSECURE_WARNING = (
    "warning: --insecure: the server's certificate is not checked; anyone on "
    "the path can read and change what you send"
)

SSL_WARNING = (
    "warning: ssl: endpoints check the server's certificate only with "
    "caCertsDir=DIR; use a tls: endpoint (or --tls), which always does"
)

# The positional parameters of a tls: endpoint string, in order (see
# twisted.internet.endpoints._parseClientTLS).
_TLS_PARAMETERS = (
    "host",
    "port",
    "timeout",
    "bindAddress",
    "certificate",
    "privateKey",
    "trustRoots",
    "endpoint",
)

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL
)


def split_description(description: str) -> tuple[list[str], dict[str, str]]:
    """
    Split a Twisted endpoint string into its positional and C{key=value}
    parameters, as C{clientFromString} does: C{:} separates parameters, the
    first C{=} of a parameter separates key from value, and a backslash
    escapes the next character. The endpoint type is the first positional
    parameter.
    """
    args: list[str] = []
    kwargs: dict[str, str] = {}
    parts: list[str] = []
    current: list[str] = []
    characters = iter(description)
    for character in characters:
        if character == "\\":
            current.append(next(characters, ""))
        elif character == ":":
            parts.append("".join(current))
            _add(parts, args, kwargs)
            parts, current = [], []
        elif character == "=" and not parts:
            parts.append("".join(current))
            current = []
        else:
            current.append(character)
    parts.append("".join(current))
    _add(parts, args, kwargs)
    return args, kwargs


def _add(parts: list[str], args: list[str], kwargs: dict[str, str]) -> None:
    if len(parts) == 1:
        args.append(parts[0])
    else:
        kwargs[parts[0]] = parts[1]


def endpoint_type(description: str) -> str:
    """
    The type of the endpoint string C{description}, lower-cased (C{tcp},
    C{tls}, C{ssl}, C{unix}, ...), as C{clientFromString} matches it.
    """
    args, _ = split_description(description)
    return args[0].lower() if args else ""


def tls_parameters(description: str) -> dict[str, str]:
    """
    The parameters of a C{tls:} endpoint string by name, positional ones
    included.
    """
    args, kwargs = split_description(description)
    named = dict(zip(_TLS_PARAMETERS, args[1:], strict=False))
    if len(args) - 1 > len(_TLS_PARAMETERS):
        raise ValueError("too many parameters")
    for key in kwargs:
        if key in named:
            raise ValueError(f"{key} given twice")
    named.update(kwargs)
    return named


def server_name(description: str) -> str | None:
    """
    C{HOST:PORT} (C{[HOST]:PORT} for an IPv6 address) of a C{tls:} or
    C{ssl:} endpoint string, to say which server a handshake failed with; or
    L{None} for an endpoint without TLS.
    """
    kind = endpoint_type(description)
    if kind == "tls":
        try:
            parameters = tls_parameters(description)
        except ValueError:
            return None
    elif kind == "ssl":
        args, parameters = split_description(description)
        parameters = dict(zip(("host", "port"), args[1:], strict=False)) | parameters
    else:
        return None
    host = parameters.get("host", "?")
    port = parameters.get("port", "?")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def load_ca_file(path: str) -> IOpenSSLTrustRoot:
    """
    The certificates in the PEM file C{path}, all of them, as a trust root:
    authorities, or a server's own self-signed certificate.

    @raise ValueError: with a message fit for the user, when the file cannot
        be read or holds no certificate.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    blocks = _PEM_CERTIFICATE.findall(data)
    if not blocks:
        raise ValueError(f"{path} holds no PEM certificate")
    try:
        certificates = [ssl.Certificate.loadPEM(block) for block in blocks]
    except (crypto.Error, SSL.Error):
        raise ValueError(f"{path} holds a certificate that cannot be read") from None
    trust_root: IOpenSSLTrustRoot = ssl.trustRootFromCertificates(certificates)
    return trust_root


@implementer(IOpenSSLClientConnectionCreator)
class UnverifiedClientTLS:
    """
    TLS that accepts any certificate (C{--insecure}), but still names the
    host in SNI so that a server with several certificates answers as it
    would to anyone.
    """

    def __init__(self, host: str) -> None:
        self._options = ssl.CertificateOptions()
        is_address = isIPAddress(host) or isIPv6Address(host)
        self._server_name = None if is_address else host.encode("idna")

    def clientConnectionForTLS(
        self, tlsProtocol: TLSMemoryBIOProtocol
    ) -> SSL.Connection:
        connection = self._options.clientConnectionForTLS(tlsProtocol)
        if self._server_name is not None:
            connection.set_tlsext_host_name(self._server_name)
        return connection


def client_endpoint(
    reactor: IReactorCore,
    description: str,
    trust_root: IOpenSSLTrustRoot | None = None,
    insecure: bool = False,
) -> IStreamClientEndpoint:
    """
    The endpoint for C{description}. With C{trust_root} (from C{--ca-file})
    or C{insecure}, C{description} must be a C{tls:} string, and the
    endpoint is what Twisted would build for it with that trust root, or
    without any verification.

    @raise ValueError: the string cannot be used that way.
    """
    if trust_root is None and not insecure:
        endpoint: IStreamClientEndpoint = endpoints.clientFromString(
            reactor, description
        )
        return endpoint
    parameters = tls_parameters(description)
    for unsupported in ("trustRoots", "certificate", "privateKey"):
        if unsupported in parameters:
            raise ValueError(
                f"{unsupported}= cannot be used with --ca-file or --insecure"
            )
    unknown = set(parameters) - set(_TLS_PARAMETERS)
    if unknown:
        raise ValueError(f"unknown parameter {sorted(unknown)[0]}")
    if "host" not in parameters or "port" not in parameters:
        raise ValueError("a tls: endpoint needs host= and port=")
    host = parameters["host"]
    creator: IOpenSSLClientConnectionCreator = (
        UnverifiedClientTLS(host)
        if insecure
        else ssl.optionsForClientTLS(host, trustRoot=trust_root)
    )
    if "endpoint" in parameters:
        inner = endpoints.clientFromString(reactor, parameters["endpoint"])
    else:
        bind = parameters.get("bindAddress")
        inner = endpoints.HostnameEndpoint(
            reactor,
            host,
            int(parameters["port"]),
            timeout=float(parameters.get("timeout", "30")),
            bindAddress=None if bind is None else (bind, 0),
        )
    return endpoints.wrapClientTLS(creator, inner)


def describe_tls_failure(reason: Failure, server: str) -> str | None:
    """
    One line saying why the TLS handshake with C{server} failed, if
    C{reason} (why a connection ended) is a handshake failure; else L{None}.

    Twisted reports an OpenSSL error as an L{SSL.Error} only while the
    handshake is under way (later ones become L{ConnectionLost}), and a
    certificate for other names than the one asked for as a
    L{VerificationError}.
    """
    if reason.check(VerificationError):
        host = server.rsplit(":", 1)[0].strip("[]")
        why = f"the server's certificate is not valid for {host}"
    elif reason.check(SSL.SysCallError):
        args = reason.value.args if reason.value is not None else ()
        why = str(args[1]) if len(args) > 1 else "connection lost"
    elif reason.check(SSL.Error) and reason.value is not None:
        why = _openssl_reasons(reason.value)
    else:
        return None
    return f"TLS handshake with {server} failed: {why}"


def _openssl_reasons(error: BaseException) -> str:
    """
    The reasons in an OpenSSL error queue (C{[(library, function,
    reason), ...]}), without the rest of the queue's noise.
    """
    queue = error.args[0] if error.args else None
    if isinstance(queue, list):
        reasons = [
            str(entry[2])
            for entry in queue
            if isinstance(entry, tuple) and len(entry) == 3 and entry[2]
        ]
        if reasons:
            return "; ".join(dict.fromkeys(reasons))
    return str(error) or type(error).__name__
