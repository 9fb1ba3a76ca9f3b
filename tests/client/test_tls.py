"""
TLS for the client (L{chatservice.client.tls}): endpoint strings, trust, the
endpoints built, and handshakes over L{twisted.test.iosim} with the
certificates the end-to-end tests use.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import ssl
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial import unittest
from zope.interface import implementer

from chatservice.client.tls import (
    UnverifiedClientTLS,
    client_endpoint,
    describe_tls_failure,
    load_ca_file,
    server_name,
    split_description,
    tls_parameters,
)
from tests.client.helpers import CertificateFiles, Recorder
from tests.support.certs import common_name, make_certificate
from tests.support.helpers import make_temp_dir


class DescriptionTests(unittest.SynchronousTestCase):
    def test_split(self) -> None:
        self.assertEqual(
            split_description(r"tls:host=\:\:1:port=6697:a=b=c:x\=y:z"),
            (["tls", "x=y", "z"], {"host": "::1", "port": "6697", "a": "b=c"}),
        )
        self.assertEqual(split_description(""), ([""], {}))
        self.assertEqual(split_description("unix:/tmp/s"), (["unix", "/tmp/s"], {}))

    def test_tls_parameters(self) -> None:
        self.assertEqual(
            tls_parameters("tls:example.org:6697:timeout=5"),
            {"host": "example.org", "port": "6697", "timeout": "5"},
        )
        with self.assertRaises(ValueError):
            tls_parameters("tls:example.org:6697:port=1")
        with self.assertRaises(ValueError):
            tls_parameters("tls:" + ":".join("abcdefghi"))

    def test_server_name(self) -> None:
        self.assertEqual(
            server_name("tls:host=example.org:port=6697"), "example.org:6697"
        )
        self.assertEqual(server_name("TLS:example.org:6697"), "example.org:6697")
        self.assertEqual(server_name(r"tls:host=\:\:1:port=6697"), "[::1]:6697")
        self.assertEqual(server_name("ssl:host=h:port=1"), "h:1")
        self.assertEqual(server_name("ssl:h:1"), "h:1")
        self.assertIsNone(server_name("tcp:host=h:port=1"))
        self.assertIsNone(server_name("unix:path=/tmp/s"))


class _Greeter(Protocol):
    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(b"hello\r\n")


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """
    The server side of a TLS connection with C{key} and C{cert}, set up
    with cryptography's objects, which pyOpenSSL prefers to its own.
    """

    def __init__(self, key: Path, cert: Path, ask_client: bool = False) -> None:
        private_key = serialization.load_pem_private_key(key.read_bytes(), None)
        self._context = SSL.Context(SSL.TLS_METHOD)
        self._context.use_privatekey(private_key)  # type: ignore[arg-type]
        self._context.use_certificate(x509.load_pem_x509_certificate(cert.read_bytes()))
        if ask_client:
            # Any certificate will do: the test looks at which one came.
            self._context.set_verify(
                SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                lambda *args: True,
            )

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        return SSL.Connection(self._context, None)


def handshake(
    creator: IOpenSSLClientConnectionCreator, key: Path, cert: Path
) -> tuple[Recorder, iosim.IOPump, object]:
    """
    A TLS server with C{key} and C{cert} that says hello, and a client with
    the connection creator C{creator}, connected in memory. Returns the
    client's protocol (what it received, and why it was disconnected), the
    pump, and the server's TLS protocol.
    """
    clock = Clock()
    server_factory = TLSMemoryBIOFactory(
        ServerTLS(key, cert), False, Factory.forProtocol(_Greeter), clock
    )
    recorder = Recorder()
    client_factory = TLSMemoryBIOFactory(
        creator, True, Factory.forProtocol(lambda: recorder), clock
    )
    server_tls = server_factory.buildProtocol(None)
    client_tls = client_factory.buildProtocol(None)
    _, _, pump = iosim.connectedServerAndClient(
        lambda: server_tls, lambda: client_tls, clock=clock
    )
    pump.flush()
    return recorder, pump, server_tls


class TLSHandshakeTests(unittest.SynchronousTestCase):
    """
    What Twisted and service_identity check, with the certificates the
    end-to-end tests use (valid for localhost, 127.0.0.1 and ::1).
    """

    def setUp(self) -> None:
        self.files = CertificateFiles(self)
        self.trust = load_ca_file(str(self.files.cert))

    def test_names_and_addresses_verify(self) -> None:
        """
        An IP address is checked against the certificate's IP address
        names, IPv4 and IPv6 alike; a host name against its DNS names.
        """
        for host in ("127.0.0.1", "::1", "localhost"):
            creator = ssl.optionsForClientTLS(host, trustRoot=self.trust)
            recorder, _, _ = handshake(creator, self.files.key, self.files.cert)
            self.assertEqual(recorder.data, b"hello\r\n", host)
            self.assertIsNone(recorder.reason, host)

    def test_other_names_fail(self) -> None:
        for host in ("127.0.0.2", "::2", "example.com"):
            creator = ssl.optionsForClientTLS(host, trustRoot=self.trust)
            recorder, _, _ = handshake(creator, self.files.key, self.files.cert)
            self.assertEqual(recorder.data, b"", host)
            assert recorder.reason is not None
            self.assertTrue(recorder.reason.check(VerificationError), host)
            self.assertEqual(
                describe_tls_failure(recorder.reason, server_name_of(host)),
                f"TLS handshake with {server_name_of(host)} failed: the server's "
                f"certificate is not valid for {host}",
            )

    def test_untrusted_certificate_fails(self) -> None:
        creator = ssl.optionsForClientTLS(
            "127.0.0.1", trustRoot=load_ca_file(str(self.files.other))
        )
        recorder, _, _ = handshake(creator, self.files.key, self.files.cert)
        self.assertEqual(recorder.data, b"")
        assert recorder.reason is not None
        self.assertTrue(recorder.reason.check(SSL.Error))
        self.assertEqual(
            describe_tls_failure(recorder.reason, "127.0.0.1:6697"),
            "TLS handshake with 127.0.0.1:6697 failed: certificate verify failed",
        )

    def test_ca_file_with_several_certificates(self) -> None:
        """
        Every certificate in the file is trusted, not just the first.
        """
        both = self.files.directory / "both.pem"
        both.write_bytes(self.files.other.read_bytes() + self.files.cert.read_bytes())
        creator = ssl.optionsForClientTLS(
            "localhost", trustRoot=load_ca_file(str(both))
        )
        recorder, _, _ = handshake(creator, self.files.key, self.files.cert)
        self.assertEqual(recorder.data, b"hello\r\n")

    def test_insecure_accepts_any_certificate_and_sends_sni(self) -> None:
        recorder, _, server = handshake(
            UnverifiedClientTLS("localhost"), self.files.key, self.files.cert
        )
        self.assertEqual(recorder.data, b"hello\r\n")
        connection = server.getHandle()  # type: ignore[attr-defined]
        self.assertEqual(connection.get_servername(), b"localhost")

    def test_insecure_sends_no_sni_for_addresses(self) -> None:
        recorder, _, server = handshake(
            UnverifiedClientTLS("127.0.0.1"), self.files.key, self.files.cert
        )
        self.assertEqual(recorder.data, b"hello\r\n")
        self.assertIsNone(server.getHandle().get_servername())  # type: ignore[attr-defined]

    def test_other_failures(self) -> None:
        self.assertIsNone(
            describe_tls_failure(Failure(ConnectionLost()), "h:1"),
        )
        self.assertEqual(
            describe_tls_failure(Failure(SSL.SysCallError(104, "ECONNRESET")), "h:1"),
            "TLS handshake with h:1 failed: ECONNRESET",
        )
        self.assertEqual(
            describe_tls_failure(
                Failure(SSL.Error([("SSL routines", "", "wrong version number")])),
                "h:1",
            ),
            "TLS handshake with h:1 failed: wrong version number",
        )
        self.assertEqual(
            describe_tls_failure(Failure(SSL.Error("odd")), "h:1"),
            "TLS handshake with h:1 failed: odd",
        )


def server_name_of(host: str) -> str:
    return f"[{host}]:6697" if ":" in host else f"{host}:6697"


class ClientEndpointTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.files = CertificateFiles(self)
        self.trust = load_ca_file(str(self.files.cert))

    def connect_through(
        self, description: str, ask_client: bool = False, **kwargs: object
    ) -> tuple[Recorder, MemoryReactor]:
        """
        Build the endpoint for C{description} (which wraps a unix: endpoint,
        so that the memory reactor records the attempt), connect, and run
        the TLS on top of it in memory against the server (which, if
        C{ask_client}, asks for the client's certificate; its TLS protocol
        is kept as C{self.server_tls}).
        """
        reactor = MemoryReactor()
        endpoint = client_endpoint(reactor, description, **kwargs)  # type: ignore[arg-type]
        recorder = Recorder()
        endpoint.connect(Factory.forProtocol(lambda: recorder))
        (_, factory, _, _) = reactor.unixClients[0]
        clock = Clock()
        server_tls = TLSMemoryBIOFactory(
            ServerTLS(self.files.key, self.files.cert, ask_client),
            False,
            Factory.forProtocol(_Greeter),
            clock,
        ).buildProtocol(None)
        self.server_tls = server_tls
        client_tls = factory.buildProtocol(None)
        _, _, pump = iosim.connectedServerAndClient(
            lambda: server_tls, lambda: client_tls, clock=clock
        )
        pump.flush()
        return recorder, reactor

    def test_ca_file_is_used(self) -> None:
        recorder, _ = self.connect_through(
            r"tls:host=localhost:port=6697:endpoint=unix\:/tmp/s",
            trust_root=self.trust,
        )
        self.assertEqual(recorder.data, b"hello\r\n")

    def test_ca_file_checks_the_host(self) -> None:
        recorder, _ = self.connect_through(
            r"tls:host=example.com:port=6697:endpoint=unix\:/tmp/s",
            trust_root=self.trust,
        )
        self.assertEqual(recorder.data, b"")
        assert recorder.reason is not None
        self.assertTrue(recorder.reason.check(VerificationError))

    def test_insecure(self) -> None:
        recorder, _ = self.connect_through(
            r"tls:host=example.com:port=6697:endpoint=unix\:/tmp/s", insecure=True
        )
        self.assertEqual(recorder.data, b"hello\r\n")

    def test_hostname_endpoint(self) -> None:
        """
        Without endpoint=, the TLS endpoint connects to host and port, as
        Twisted's own tls: endpoints do.
        """
        reactor = MemoryReactorClock()
        endpoint = client_endpoint(
            reactor, "tls:127.0.0.1:6697:timeout=7", trust_root=self.trust
        )
        endpoint.connect(Factory.forProtocol(Protocol))
        # HostnameEndpoint resolves the name, even an address, first.
        reactor.advance(0)
        [(host, port, _, timeout, _)] = reactor.tcpClients
        self.assertEqual((host, port, timeout), ("127.0.0.1", 6697, 7))

    def test_plain(self) -> None:
        reactor = MemoryReactor()
        endpoint = client_endpoint(reactor, "tcp:host=127.0.0.1:port=1")
        endpoint.connect(Factory.forProtocol(Protocol))
        self.assertEqual(reactor.tcpClients[0][:2], ("127.0.0.1", 1))

    def test_trust_roots(self) -> None:
        """
        C{trustRoots=DIR} trusts the certificates of the C{*.pem} files in
        DIR, passing over the others, as Twisted's own C{tls:} parser does.
        """
        roots = make_temp_dir(self)
        (roots / "ca.PEM").write_bytes(self.files.cert.read_bytes())
        (roots / "broken.pem").write_bytes(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        (roots / "notes.txt").write_bytes(self.files.other.read_bytes())
        (roots / "directory.pem").mkdir()
        recorder, _ = self.connect_through(
            rf"tls:host=localhost:port=6697:trustRoots={roots}:endpoint=unix\:/tmp/s"
        )
        self.assertEqual(recorder.data, b"hello\r\n")

    def test_trust_roots_without_the_server(self) -> None:
        roots = make_temp_dir(self)
        (roots / "other.pem").write_bytes(self.files.other.read_bytes())
        (roots / "server.txt").write_bytes(self.files.cert.read_bytes())
        recorder, _ = self.connect_through(
            rf"tls:host=localhost:port=6697:trustRoots={roots}:endpoint=unix\:/tmp/s"
        )
        self.assertEqual(recorder.data, b"")
        assert recorder.reason is not None
        self.assertTrue(recorder.reason.check(SSL.Error))

    def test_client_certificate(self) -> None:
        """
        C{certificate=} (with C{privateKey=}, or with the key in the same
        file) is shown to a server that asks.
        """
        roots = make_temp_dir(self)
        (roots / "ca.pem").write_bytes(self.files.cert.read_bytes())
        key, cert = make_certificate(self.files.directory, "client", "the client")
        both = self.files.directory / "client.pem"
        both.write_bytes(cert.read_bytes() + key.read_bytes())
        for parameters in (
            f"certificate={cert}:privateKey={key}",
            f"certificate={both}",
        ):
            recorder, _ = self.connect_through(
                f"tls:host=localhost:port=6697:trustRoots={roots}:{parameters}"
                r":endpoint=unix\:/tmp/s",
                ask_client=True,
            )
            self.assertEqual(recorder.data, b"hello\r\n", parameters)
            shown = self.server_tls.getHandle().get_peer_certificate()
            self.assertEqual(
                common_name(
                    shown.to_cryptography().public_bytes(serialization.Encoding.PEM)
                ),
                "the client",
            )

    def test_unreadable_files(self) -> None:
        missing = self.files.directory / "missing"
        for description, message in [
            (f"tls:host=h:port=1:trustRoots={missing}", f"cannot read {missing}: "),
            (f"tls:host=h:port=1:certificate={missing}", f"cannot read {missing}: "),
            (
                f"tls:host=h:port=1:certificate={self.files.cert}:privateKey={missing}",
                f"cannot read {missing}: ",
            ),
            (
                f"tls:host=h:port=1:certificate={self.files.cert}",
                f"{self.files.cert} and its key cannot be read as a client certificate",
            ),
        ]:
            with self.assertRaises(ValueError) as caught:
                client_endpoint(MemoryReactor(), description)
            self.assertIn(message, str(caught.exception))

    def test_bad_parameters(self) -> None:
        for description, message in [
            ("tls:host=h", "a tls: endpoint needs host= and port="),
            ("tls:host=h:port=1:colour=red", "unknown parameter colour"),
            ("tls:host=h:port=1:certificate=c.pem", "certificate= cannot be used"),
        ]:
            with self.assertRaises(ValueError) as caught:
                client_endpoint(MemoryReactor(), description, insecure=True)
            self.assertIn(message, str(caught.exception))
