"""
TLS for C{chat-client}: endpoints that check the server's certificate, and a
failed handshake told in one line.

C{--tls HOST PORT} is spelt as the endpoint string C{tls:host=HOST:port=PORT},
so it and C{--connect tls:...} take the same path, L{client_endpoint}, which
reads the C{tls:} parameters as Twisted's own parser does and verifies the
certificate against the platform's trust store (or C{trustRoots=DIR}, or
C{--ca-file}) and the host name or IP address with C{service_identity}. The
endpoint is built here rather than by Twisted's parser for three reasons:
C{--ca-file} names a single file, which the C{tls:} syntax cannot;
C{--insecure} turns verification off, which it cannot either; and the
endpoint is a L{chatservice.client.tls_endpoint.TLSClientEndpoint}, so that a
plain-text port's explanation reaches the user (L{describe_tls_failure}).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, cast

from OpenSSL import SSL, crypto
from service_identity import VerificationError
from twisted.internet import endpoints, ssl
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorCore,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from chatservice.client.tls_endpoint import PlainTextReply, TLSClientEndpoint

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
    certificates = _certificates(data)
    if certificates is None:
        raise ValueError(f"{path} holds a certificate that cannot be read")
    if not certificates:
        raise ValueError(f"{path} holds no PEM certificate")
    trust_root: IOpenSSLTrustRoot = ssl.trustRootFromCertificates(certificates)
    return trust_root


def load_ca_directory(path: str) -> IOpenSSLTrustRoot:
    """
    The certificates in the C{*.pem} files of the directory C{path}, as a
    trust root: what C{trustRoots=DIR} means to Twisted's C{tls:} parser,
    which passes over files that cannot be read or hold no certificate.

    @raise ValueError: the directory cannot be listed.
    """
    try:
        files = sorted(Path(path).iterdir())
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    certificates: dict[str, ssl.Certificate] = {}
    for file in files:
        if file.suffix.lower() != ".pem":
            continue
        try:
            data = file.read_bytes()
        except OSError:
            continue
        for certificate in _certificates(data) or []:
            certificates[certificate.digest()] = certificate
    trust_root: IOpenSSLTrustRoot = ssl.trustRootFromCertificates(
        list(certificates.values())
    )
    return trust_root


def _certificates(data: bytes) -> list[ssl.Certificate] | None:
    """
    Every PEM certificate in C{data}; L{None} if one cannot be read.
    """
    try:
        return [
            ssl.Certificate.loadPEM(block) for block in _PEM_CERTIFICATE.findall(data)
        ]
    except (crypto.Error, SSL.Error):
        return None


def load_client_certificate(
    certificate: str, private_key: str | None
) -> ssl.PrivateCertificate:
    """
    The certificate (with its key) that C{certificate=} and C{privateKey=}
    name, as Twisted's C{tls:} parser reads them: the key is in the
    certificate's file unless a file of its own is given.

    @raise ValueError: a file cannot be read, or holds no usable
        certificate or key.
    """
    try:
        certificate_data = Path(certificate).read_bytes()
        key_data = None if private_key is None else Path(private_key).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {e.filename}: {e.strerror or e}") from None
    loaded: ssl.PrivateCertificate
    try:
        if key_data is None:
            loaded = ssl.PrivateCertificate.loadPEM(certificate_data)
        else:
            loaded = ssl.PrivateCertificate.fromCertificateAndKeyPair(
                ssl.Certificate.loadPEM(certificate_data),
                ssl.KeyPair.load(key_data, crypto.FILETYPE_PEM),
            )
    except (crypto.Error, SSL.Error, ValueError):
        raise ValueError(
            f"{certificate} and its key cannot be read as a client certificate"
        ) from None
    return loaded


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
    The endpoint for C{description}. A C{tls:} one is what Twisted would
    build for it, as a L{TLSClientEndpoint}, with C{trust_root} (from
    C{--ca-file}) if given, or without any verification if C{insecure};
    any other is Twisted's own.

    @raise ValueError: the string cannot be used that way.
    """
    if endpoint_type(description) != "tls":
        endpoint: IStreamClientEndpoint = endpoints.clientFromString(
            reactor, description
        )
        return endpoint
    parameters = tls_parameters(description)
    if trust_root is not None or insecure:
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
    creator: IOpenSSLClientConnectionCreator
    if insecure:
        creator = UnverifiedClientTLS(host)
    else:
        if "trustRoots" in parameters:
            trust_root = load_ca_directory(parameters["trustRoots"])
        client_certificate = None
        if "certificate" in parameters:
            client_certificate = load_client_certificate(
                parameters["certificate"], parameters.get("privateKey")
            )
        creator = ssl.optionsForClientTLS(
            host, trustRoot=trust_root, clientCertificate=client_certificate
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
    return TLSClientEndpoint(creator, inner, cast(IReactorTime, reactor))


def describe_tls_failure(reason: Failure, server: str) -> str | None:
    """
    One line saying why the TLS handshake with C{server} failed, if
    C{reason} (why a connection ended) is a handshake failure; else L{None}.

    Twisted reports an OpenSSL error as an L{SSL.Error} only while the
    handshake is under way (later ones become L{ConnectionLost}), and a
    certificate for other names than the one asked for as a
    L{VerificationError}; a server that answered in plain text ends the
    connection with L{PlainTextReply}, which says what it said.
    """
    if reason.check(PlainTextReply):
        why = str(reason.value)
    elif reason.check(VerificationError):
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
