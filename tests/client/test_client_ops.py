"""
The client's operations features: TLS (C{--tls}, C{--ca-file}, C{--insecure},
C{--connect tls:...}), C{--reconnect}, and interactive use at a terminal.

In memory: the options, the TLS endpoints and handshakes (over
L{twisted.test.iosim}), the session state and the reconnecting link (with a
fake endpoint and a L{Clock}), the line editor, the display and the terminal
mode (on a pseudo-terminal of this process). As subprocesses: the installed
C{chat-client} against the installed C{twistd chat}, over TLS, across a
server restart, and at a pseudo-terminal.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import termios
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import ssl
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import (
    INegotiated,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, MemoryReactorClock, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial import unittest
from zope.interface import directlyProvides, implementer

from chatservice.client import cli as client
from chatservice.client.cli import InteractiveTerminal, Options
from chatservice.client.connection import ServerConnection, describe_end
from chatservice.client.session import ReconnectingLink, SessionState, Snapshot
from chatservice.client.terminal import Display, LineEditor, TerminalMode, display_width
from chatservice.client.tls import (
    INSECURE_WARNING,
    SSL_WARNING,
    UnverifiedClientTLS,
    client_endpoint,
    describe_tls_failure,
    load_ca_file,
    server_name,
    split_description,
    tls_parameters,
)
from tests.support.certs import make_certificate
from tests.support.helpers import (
    CHAT_CLIENT,
    TIMEOUT,
    ServerProcess,
    SocketClient,
    make_temp_dir,
    read_until,
    stop_process,
)


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


class CertificateFiles:
    """
    Two self-signed certificates in a temporary directory: C{cert} (the
    server's) and C{other} (someone else's), with C{key}.
    """

    def __init__(self, testcase: unittest.SynchronousTestCase) -> None:
        self.directory = make_temp_dir(testcase)
        self.key, self.cert = make_certificate(self.directory, "server")
        _, self.other = make_certificate(
            self.directory, "other", common_name="someone else"
        )


# Options


class TLSOptionsTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.files = CertificateFiles(self)

    def test_tls(self) -> None:
        options = parse("--tls", "chat.example.org", "6697")
        self.assertEqual(options.endpoint, "tls:host=chat.example.org:port=6697")
        self.assertEqual(options.tls_server, "chat.example.org:6697")
        self.assertEqual(options.warnings(), [])

    def test_tls_defaults(self) -> None:
        self.assertEqual(parse("--tls").endpoint, "tls:host=127.0.0.1:port=12345")

    def test_tls_ipv6(self) -> None:
        options = parse("--tls", "::1", "6697")
        self.assertEqual(options.endpoint, r"tls:host=\:\:1:port=6697")
        self.assertEqual(options.tls_server, "[::1]:6697")

    def test_plain_has_no_tls_server(self) -> None:
        self.assertIsNone(parse("127.0.0.1", "1").tls_server)

    def test_tls_with_connect(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            parse("--tls", "--connect", "tcp:host=127.0.0.1:port=1")
        self.assertIn("give a tls: endpoint", str(caught.exception))

    def test_ca_file_and_insecure_need_tls(self) -> None:
        for flags in (["--ca-file", str(self.files.cert)], ["--insecure"]):
            for target in (["127.0.0.1", "1"], ["--connect", "tcp:host=h:port=1"]):
                with self.assertRaises(usage.UsageError) as caught:
                    parse(*flags, *target)
                self.assertEqual(
                    str(caught.exception),
                    f"{flags[0]} is for TLS: add --tls, or --connect a tls: endpoint",
                )

    def test_ca_file_with_tls_endpoint(self) -> None:
        for argv in (
            ["--tls", "127.0.0.1", "6697"],
            ["--connect", "tls:host=127.0.0.1:port=6697"],
            ["--connect", "TLS:127.0.0.1:6697"],
        ):
            options = parse("--ca-file", str(self.files.cert), *argv)
            self.assertIsNotNone(options.trust_root)
            self.assertEqual(options.warnings(), [])

    def test_ca_file_and_insecure(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            parse("--tls", "--insecure", "--ca-file", str(self.files.cert))
        self.assertEqual(
            str(caught.exception), "give either --ca-file or --insecure, not both"
        )

    def test_ca_file_unreadable(self) -> None:
        missing = self.files.directory / "missing.pem"
        with self.assertRaises(usage.UsageError) as caught:
            parse("--tls", "--ca-file", str(missing))
        self.assertEqual(
            str(caught.exception),
            f"--ca-file: cannot read {missing}: No such file or directory",
        )

    def test_ca_file_without_certificate(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            parse("--tls", "--ca-file", str(self.files.key))
        self.assertEqual(
            str(caught.exception),
            f"--ca-file: {self.files.key} holds no PEM certificate",
        )

    def test_ca_file_with_broken_certificate(self) -> None:
        broken = self.files.directory / "broken.pem"
        broken.write_bytes(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        with self.assertRaises(usage.UsageError) as caught:
            parse("--tls", "--ca-file", str(broken))
        self.assertIn("cannot be read", str(caught.exception))

    def test_ca_file_and_trust_roots(self) -> None:
        roots = make_temp_dir(self)
        (roots / "ca.pem").write_bytes(self.files.cert.read_bytes())
        with self.assertRaises(usage.UsageError) as caught:
            parse(
                "--ca-file",
                str(self.files.cert),
                "--connect",
                f"tls:host=h:port=1:trustRoots={roots}",
            )
        self.assertIn(
            "trustRoots= cannot be used with --ca-file", str(caught.exception)
        )

    def test_insecure_warns(self) -> None:
        options = parse("--tls", "--insecure", "localhost", "6697")
        self.assertEqual(options.warnings(), [INSECURE_WARNING])
        self.assertIn("not checked", INSECURE_WARNING)

    def test_ssl_endpoint_warns(self) -> None:
        options = parse("--connect", "ssl:host=127.0.0.1:port=6697")
        self.assertEqual(options.warnings(), [SSL_WARNING])
        options = parse("--connect", "ssl:host=127.0.0.1:port=6697:caCertsDir=/")
        self.assertEqual(options.warnings(), [])

    def test_reconnect_flag(self) -> None:
        self.assertFalse(parse().get("reconnect"))
        self.assertTrue(parse("--reconnect").get("reconnect"))

    def test_main_reports_tls_usage_errors(self) -> None:
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        with self.assertRaises(SystemExit) as caught:
            client.main(["--insecure", "127.0.0.1", "1"])
        self.assertEqual(caught.exception.code, 2)
        self.assertTrue(
            stderr.getvalue().startswith(
                "chat-client: --insecure is for TLS: add --tls, or --connect a "
                "tls: endpoint\n"
            ),
            stderr.getvalue(),
        )
        for option in ("--tls", "--ca-file=", "--insecure", "--reconnect"):
            self.assertIn(option, stderr.getvalue())


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


# TLS, in memory


class _Greeter(Protocol):
    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(b"hello\r\n")


class _Recorder(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = ConnectionDone) -> None:  # type: ignore[assignment]
        self.reason = reason


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """
    The server side of a TLS connection with C{key} and C{cert}, set up
    with cryptography's objects, which pyOpenSSL prefers to its own.
    """

    def __init__(self, key: Path, cert: Path) -> None:
        private_key = serialization.load_pem_private_key(key.read_bytes(), None)
        self._context = SSL.Context(SSL.TLS_METHOD)
        self._context.use_privatekey(private_key)  # type: ignore[arg-type]
        self._context.use_certificate(x509.load_pem_x509_certificate(cert.read_bytes()))

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        return SSL.Connection(self._context, None)


def handshake(
    creator: IOpenSSLClientConnectionCreator, key: Path, cert: Path
) -> tuple[_Recorder, iosim.IOPump, object]:
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
    recorder = _Recorder()
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


@implementer(IStreamClientEndpoint)
class RecordingEndpoint:
    """
    An endpoint whose connections the test completes by hand.
    """

    def __init__(self) -> None:
        self.attempts: list[tuple[IProtocolFactory, Deferred[IProtocol]]] = []

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        d: Deferred[IProtocol] = Deferred()
        self.attempts.append((protocolFactory, d))
        return d

    def succeed(
        self, transport: StringTransport | None = None
    ) -> tuple[IProtocol, StringTransport]:
        factory, d = self.attempts[-1]
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 6667))
        assert protocol is not None
        transport = transport or StringTransport()
        protocol.makeConnection(transport)
        d.callback(protocol)
        return protocol, transport

    def fail(self, reason: Exception) -> None:
        _, d = self.attempts[-1]
        d.errback(reason)


class ClientEndpointTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.files = CertificateFiles(self)
        self.trust = load_ca_file(str(self.files.cert))

    def connect_through(
        self, description: str, **kwargs: object
    ) -> tuple[_Recorder, MemoryReactor]:
        """
        Build the endpoint for C{description} (which wraps a unix: endpoint,
        so that the memory reactor records the attempt), connect, and run
        the TLS on top of it in memory against the server.
        """
        reactor = MemoryReactor()
        endpoint = client_endpoint(reactor, description, **kwargs)  # type: ignore[arg-type]
        recorder = _Recorder()
        endpoint.connect(Factory.forProtocol(lambda: recorder))
        (_, factory, _, _) = reactor.unixClients[0]
        clock = Clock()
        server_tls = TLSMemoryBIOFactory(
            ServerTLS(self.files.key, self.files.cert),
            False,
            Factory.forProtocol(_Greeter),
            clock,
        ).buildProtocol(None)
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

    def test_bad_parameters(self) -> None:
        for description, message in [
            ("tls:host=h", "a tls: endpoint needs host= and port="),
            ("tls:host=h:port=1:colour=red", "unknown parameter colour"),
            ("tls:host=h:port=1:certificate=c.pem", "certificate= cannot be used"),
        ]:
            with self.assertRaises(ValueError) as caught:
                client_endpoint(MemoryReactor(), description, insecure=True)
            self.assertIn(message, str(caught.exception))


# The end of a connection


class TLSTransport(StringTransport):
    """
    A transport that looks like Twisted's TLS one: it is L{INegotiated},
    and (like it) offers a C{loseWriteConnection} that is not TLS's.
    """

    write_closed = False

    def __init__(self) -> None:
        super().__init__()
        directlyProvides(self, INegotiated)

    def loseWriteConnection(self) -> None:
        self.write_closed = True


class ConnectionEndTests(unittest.SynchronousTestCase):
    def connect(self, transport: StringTransport) -> ServerConnection:
        server = ServerConnection()
        server.makeConnection(transport)
        server.print_to(lambda data: None)
        return server

    def test_end_input_over_tls_quits(self) -> None:
        transport = TLSTransport()
        server = self.connect(transport)
        server.end_input()
        self.assertFalse(transport.write_closed)
        self.assertEqual(transport.value(), b"\n/quit\n")

    def test_goodbye_over_tls_closes(self) -> None:
        """
        Over TLS the client closes once the server has said goodbye, rather
        than wait for the server's own close.
        """
        transport = TLSTransport()
        server = self.connect(transport)
        server.dataReceived(b"*** Goodbye.\r")
        self.assertFalse(transport.disconnecting)
        server.dataReceived(b"\n")
        self.assertTrue(transport.disconnecting)
        self.assertTrue(server.said_goodbye)

    def test_goodbye_over_tcp_waits(self) -> None:
        transport = StringTransport()
        server = self.connect(transport)
        server.dataReceived(b"*** Goodbye.\r\n")
        self.assertTrue(server.said_goodbye)
        self.assertFalse(transport.disconnecting)

    def test_nothing_after_loss(self) -> None:
        """
        Input that ends, or output that closes, after the connection is
        gone (the reactor stopping on Ctrl-C) touches nothing.
        """
        transport = StringTransport()
        server = self.connect(transport)
        server.connectionLost(Failure(ConnectionLost()))
        server.send(b"late\n")
        server.end_input()
        server.close()
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)

    def test_said_goodbye(self) -> None:
        for data, expected in [
            (b"*** Goodbye.\r\n", True),
            (b"x\r\n*** Goodbye.\r\n", True),
            (b"[lobby] <a> *** Goodbye.\r\n", False),
            (b"*** Goodbye.\r\nmore\r\n", False),
            (b"*** The server is shutting down. Goodbye.\r\n", False),
            (b"", False),
        ]:
            server = self.connect(StringTransport())
            for i in range(len(data)):
                server.dataReceived(data[i : i + 1])
            self.assertEqual(server.said_goodbye, expected, data)

    def ended(
        self, reason: Exception, data: bytes = b"", tls: str | None = None
    ) -> ServerConnection:
        server = self.connect(StringTransport())
        server.dataReceived(data)
        server.connectionLost(Failure(reason))
        return server

    def test_describe_end(self) -> None:
        lost = ConnectionLost()
        message = f"connection lost: {Failure(lost).getErrorMessage()}"
        for server, ended, expected in [
            (self.ended(ConnectionDone()), True, (0, None)),
            (self.ended(lost, b"*** Goodbye.\r\n"), True, (0, None)),
            (self.ended(lost), True, (1, message)),
            (self.ended(lost, b"*** Goodbye.\r\n"), False, (1, message)),
            (
                self.ended(ConnectionDone()),
                False,
                (1, "the server closed the connection"),
            ),
        ]:
            self.assertEqual(describe_end(server, ended, None), expected)

    def test_describe_end_tls(self) -> None:
        server = self.ended(
            SSL.Error([("SSL routines", "", "certificate verify failed")])
        )
        self.assertEqual(
            describe_end(server, True, "127.0.0.1:6697"),
            (1, "TLS handshake with 127.0.0.1:6697 failed: certificate verify failed"),
        )
        server = self.ended(ConnectionDone())
        self.assertEqual(describe_end(server, True, "127.0.0.1:6697"), (0, None))


# The session


WELCOME = (
    "*** Welcome to chatservice, guest3! You are in lobby. Type /help for commands."
)


class SessionStateTests(unittest.SynchronousTestCase):
    def state(self, *lines: str, user: tuple[str, ...] = ()) -> SessionState:
        state = SessionState()
        for line in user:
            state.user_line(line)
        for line in lines:
            state.server_line(line)
        return state

    def test_welcome(self) -> None:
        state = self.state(WELCOME)
        self.assertEqual(
            state.snapshot(),
            Snapshot(nick="guest3", rooms=("lobby",), current="lobby"),
        )

    def test_nick_and_rooms(self) -> None:
        state = self.state(
            WELCOME,
            "*** You are now known as alice.",
            "*** Now talking in python (3 members).",
            "*** Now talking in rust (1 member).",
            "*** Now talking in python.",
        )
        self.assertEqual(state.nick, "alice")
        self.assertEqual(state.rooms, ["lobby", "python", "rust"])
        self.assertEqual(state.current, "python")

    def test_part(self) -> None:
        state = self.state(
            WELCOME,
            "*** Now talking in python (1 member).",
            "*** You left lobby; now talking in python.",
        )
        self.assertEqual((state.rooms, state.current), (["python"], "python"))
        state.server_line(
            "*** You left python; you are in no room now; /join one to talk."
        )
        self.assertEqual((state.rooms, state.current), ([], None))

    def test_others_cannot_pretend(self) -> None:
        """
        Only lines starting with C{*** } count, and only the server sends
        those.
        """
        state = self.state(
            WELCOME,
            "[lobby] <bob> *** You are now known as bob.",
            "*bob* *** Now talking in trap (1 member).",
            "[lobby] * bob *** You are logged in as bob.",
            user=("/login bob secretpw",),
        )
        self.assertEqual(state.snapshot(), Snapshot("guest3", ("lobby",), "lobby"))

    def test_register(self) -> None:
        state = self.state(
            WELCOME,
            "*** You are now known as alice.",
            "*** alice is registered to you, and you are logged in.",
            user=("/register wonderland1",),
        )
        self.assertEqual((state.account, state.password), ("alice", "wonderland1"))

    def test_login(self) -> None:
        state = self.state(
            WELCOME,
            "*** You are now known as Alice.",
            "*** You are logged in as Alice.",
            user=("/LOGIN alice wonderland1",),
        )
        self.assertEqual((state.account, state.password), ("Alice", "wonderland1"))

    def test_wrong_password_is_not_kept(self) -> None:
        state = self.state(
            WELCOME,
            "!!! Wrong password for alice.",
            user=("/login alice guess1234",),
        )
        self.assertIsNone(state.account)
        self.assertIsNone(state.snapshot().password)

    def test_password_change(self) -> None:
        state = self.state(
            WELCOME,
            "*** You are logged in as alice.",
            user=("/login alice wonderland1", "/password wonderland1 looking-glass"),
        )
        self.assertEqual(state.password, "wonderland1")
        state.server_line("*** Your password is changed.")
        self.assertEqual(state.password, "looking-glass")

    def test_password_change_refused(self) -> None:
        state = self.state(
            WELCOME,
            "*** You are logged in as alice.",
            "!!! Wrong password; the password is unchanged.",
            user=("/login alice wonderland1", "/password nope looking-glass"),
        )
        self.assertEqual(state.password, "wonderland1")

    def test_logout(self) -> None:
        state = self.state(
            WELCOME,
            "*** You are logged in as alice.",
            "*** You are logged out.",
            user=("/login alice wonderland1",),
        )
        self.assertEqual((state.account, state.password), (None, None))

    def test_displaced(self) -> None:
        """
        Someone else logging in as our name logs us out: reconnecting must
        not log in again and displace them in turn.
        """
        state = self.state(
            WELCOME,
            "*** You are logged in as alice.",
            "*** alice has logged in from elsewhere; you are renamed.",
            "*** You are now known as guest9.",
            user=("/login alice wonderland1",),
        )
        self.assertEqual(state.snapshot().commands(), [])

    def test_new_welcome_resets(self) -> None:
        state = self.state(
            WELCOME,
            "*** You are logged in as alice.",
            "*** Now talking in python (1 member).",
            WELCOME.replace("guest3", "guest7"),
            user=("/login alice wonderland1",),
        )
        self.assertEqual(state.snapshot(), Snapshot("guest7", ("lobby",), "lobby"))


class SnapshotTests(unittest.SynchronousTestCase):
    def test_never_welcomed(self) -> None:
        """
        A session the server never took in (it was full) restores nothing:
        not even the part from the room a newcomer is put in.
        """
        self.assertEqual(Snapshot().commands(), [])

    def test_guest_in_lobby(self) -> None:
        snapshot = Snapshot("guest3", ("lobby",), "lobby")
        self.assertEqual(snapshot.commands(), [])
        self.assertEqual(snapshot.describe(), "rooms lobby")

    def test_nick_and_rooms(self) -> None:
        snapshot = Snapshot("alice", ("lobby", "python"), "python")
        self.assertEqual(snapshot.commands(), ["/nick alice", "/join python"])
        self.assertEqual(snapshot.describe(), "nickname alice, rooms lobby, python")

    def test_current_room_kept(self) -> None:
        snapshot = Snapshot("alice", ("lobby", "python", "rust"), "lobby")
        self.assertEqual(
            snapshot.commands(),
            ["/nick alice", "/join python", "/join rust", "/join lobby"],
        )

    def test_not_in_lobby(self) -> None:
        snapshot = Snapshot("guest3", ("python", "rust"), "python")
        self.assertEqual(
            snapshot.commands(),
            ["/join python", "/join rust", "/part lobby", "/join python"],
        )
        snapshot = Snapshot("guest3", ("python", "rust"), "rust")
        self.assertEqual(
            snapshot.commands(), ["/join python", "/join rust", "/part lobby"]
        )

    def test_no_room(self) -> None:
        snapshot = Snapshot("guest3", (), None)
        self.assertEqual(snapshot.commands(), ["/part lobby"])
        self.assertEqual(snapshot.describe(), "no rooms")

    def test_login(self) -> None:
        snapshot = Snapshot("alice", ("lobby",), "lobby", "Alice", "wonderland1")
        self.assertEqual(snapshot.commands(), ["/login Alice wonderland1"])
        self.assertEqual(
            snapshot.describe(), "nickname alice (logging in), rooms lobby"
        )

    def test_login_then_other_nick(self) -> None:
        snapshot = Snapshot("rabbit", ("lobby",), "lobby", "alice", "wonderland1")
        self.assertEqual(
            snapshot.commands(), ["/login alice wonderland1", "/nick rabbit"]
        )

    def test_logged_in_without_password(self) -> None:
        """
        Logged in, but the password was never typed here (it cannot be):
        the nickname alone is asked for.
        """
        snapshot = Snapshot("alice", ("lobby",), "lobby", "alice", None)
        self.assertEqual(snapshot.commands(), ["/nick alice"])

    def test_reached_by(self) -> None:
        target = Snapshot("alice", ("lobby", "python"), "python", "alice", "pw")
        self.assertFalse(target.reached_by(Snapshot("guest1", ("lobby",), "lobby")))
        self.assertTrue(
            target.reached_by(Snapshot("Alice", ("python", "lobby"), "python", "alice"))
        )
        guest = Snapshot("guest3", ("lobby",), "lobby")
        self.assertTrue(guest.reached_by(Snapshot("guest8", ("lobby",), "lobby")))


class LinkTests(unittest.SynchronousTestCase):
    """
    L{ReconnectingLink} with an endpoint the test completes by hand, a
    L{Clock}, and delays of 1 s, 2 s, 3 s, ...
    """

    description = "tcp:host=127.0.0.1:port=6667"

    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoint = RecordingEndpoint()
        self.complaints: list[str] = []
        self.output: list[bytes] = []
        self.link = self.make_link()

    def make_link(self, **kwargs: object) -> ReconnectingLink:
        link = ReconnectingLink(
            self.endpoint,
            self.description,
            self.complaints.append,
            self.clock,
            retry_policy=float,
            **kwargs,  # type: ignore[arg-type]
        )
        link.print_to(self.output.append)
        link.start()
        return link

    def connect(self, *lines: str) -> tuple[IProtocol, StringTransport]:
        """
        Complete the pending attempt; the server says C{lines}.
        """
        protocol, transport = self.endpoint.succeed()
        protocol.dataReceived(b"".join(line.encode() + b"\r\n" for line in lines))
        return protocol, transport

    def lose(self, protocol: IProtocol, reason: Exception | None = None) -> None:
        protocol.connectionLost(Failure(reason or ConnectionDone()))

    def status(self) -> int:
        return self.successResultOf(self.link.done)

    def test_connects_and_relays(self) -> None:
        self.assertNoResult(self.link.connected_once)
        _, transport = self.connect(WELCOME)
        self.assertTrue(self.successResultOf(self.link.connected_once))
        self.assertEqual(b"".join(self.output), WELCOME.encode() + b"\n")
        self.link.send(b"hello\n/nick al")
        self.link.send(b"ice\n")
        self.assertEqual(transport.value(), b"hello\n/nick alice\n")
        self.assertEqual(self.complaints, [])

    def test_reconnects_and_restores(self) -> None:
        protocol, _ = self.connect(
            WELCOME,
            "*** You are now known as alice.",
            "*** Now talking in python (2 members).",
        )
        self.lose(protocol)
        self.assertEqual(
            self.complaints,
            ["connection lost (the server closed the connection); reconnecting..."],
        )
        self.assertEqual(len(self.endpoint.attempts), 1)
        self.clock.advance(0.9)
        self.assertEqual(len(self.endpoint.attempts), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.endpoint.attempts), 2)
        _, transport = self.connect(WELCOME.replace("guest3", "guest8"))
        self.assertEqual(transport.value(), b"/nick alice\n/join python\n")
        self.assertEqual(
            self.complaints[1:],
            [
                "reconnected to tcp:host=127.0.0.1:port=6667; restoring "
                "nickname alice, rooms lobby, python"
            ],
        )
        self.assertNoResult(self.link.done)

    def test_restores_login(self) -> None:
        protocol, transport = self.connect(WELCOME)
        self.link.send(b"/nick alice\n/register wonderland1\n")
        protocol.dataReceived(
            b"*** You are now known as alice.\r\n"
            b"*** alice is registered to you, and you are logged in.\r\n"
        )
        self.lose(protocol, ConnectionLost("reset"))
        self.assertEqual(
            self.complaints,
            [
                "connection lost (Connection to the other side was lost in a "
                "non-clean fashion: reset); reconnecting..."
            ],
        )
        self.clock.advance(1)
        _, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"/login alice wonderland1\n")
        self.assertIn("nickname alice (logging in)", self.complaints[-1])

    def test_failed_attempts(self) -> None:
        self.endpoint.fail(ConnectionRefusedError())
        self.assertEqual(
            self.complaints,
            [
                "cannot connect to tcp:host=127.0.0.1:port=6667: Connection was "
                "refused by other side; trying again in 1.0 s"
            ],
        )
        self.clock.advance(1)
        self.endpoint.fail(ConnectionRefusedError("111: Connection refused"))
        self.assertTrue(self.complaints[-1].endswith("; trying again in 2.0 s"))
        self.clock.advance(2)
        self.assertNoResult(self.link.connected_once)
        self.connect(WELCOME)
        self.assertTrue(self.successResultOf(self.link.connected_once))
        self.assertEqual(len(self.complaints), 2)

    def test_accepted_then_closed_backs_off(self) -> None:
        """
        A server that accepts and closes without a welcome (a full one)
        is retried ever later, and nothing is restored into it; the
        welcome starts the backoff again.
        """
        protocol, _ = self.connect(WELCOME, "*** You are now known as alice.")
        self.lose(protocol)
        for delay in (1.0, 2.0, 3.0):
            self.clock.advance(delay)
            protocol, transport = self.connect(
                "!!! The server is full (1 connections); try again later."
            )
            self.assertEqual(transport.value(), b"")
            self.lose(protocol)
        self.assertEqual(len(self.endpoint.attempts), 4)
        self.clock.advance(3.9)
        self.assertEqual(len(self.endpoint.attempts), 4)
        self.clock.advance(0.1)
        self.assertEqual(len(self.endpoint.attempts), 5)
        self.assertFalse([c for c in self.complaints if c.startswith("reconnected")])
        protocol, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"/nick alice\n")
        self.lose(protocol)
        self.clock.advance(1)
        self.assertEqual(len(self.endpoint.attempts), 6)

    def test_lines_before_the_welcome_wait(self) -> None:
        """
        Lines typed once reconnected but before the server's welcome go
        after the restoring commands.
        """
        protocol, _ = self.connect(WELCOME, "*** You are now known as alice.")
        self.lose(protocol)
        self.clock.advance(1)
        protocol, transport = self.connect()
        self.link.send(b"hello\n")
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(WELCOME.encode() + b"\r\n")
        self.assertEqual(transport.value(), b"/nick alice\nhello\n")

    def test_default_policy(self) -> None:
        """
        Without a policy given, the first retry comes after half a second
        to a second, and no retry waits much more than 30 s.
        """
        self.link = ReconnectingLink(
            self.endpoint, self.description, self.complaints.append, self.clock
        )
        delays = [self.link._policy(attempt) for attempt in range(1, 20)]
        self.assertTrue(0.5 <= delays[0] <= 1.0, delays)
        self.assertTrue(all(delay <= 30.5 for delay in delays), delays)
        self.assertGreaterEqual(delays[-1], 30)

    def test_lines_typed_while_disconnected(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.lose(protocol)
        self.link.send(b"one\ntwo\nthr")
        self.link.send(b"ee\n")
        self.clock.advance(1)
        _, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"one\ntwo\nthree\n")
        self.assertEqual(
            self.complaints[-1],
            "reconnected to tcp:host=127.0.0.1:port=6667; restoring rooms lobby; "
            "sending 3 lines typed meanwhile",
        )

    def test_queue_is_bounded(self) -> None:
        self.link = self.make_link(queue_limit=2)
        protocol, _ = self.endpoint.succeed()
        protocol.dataReceived(WELCOME.encode() + b"\r\n")
        self.lose(protocol)
        self.link.send(b"1\n2\n3\n4\n")
        self.assertEqual(
            self.complaints[1:],
            [
                "2 lines wait to be sent; lines typed from now until reconnected "
                "are dropped"
            ],
        )
        self.clock.advance(1)
        _, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"1\n2\n")
        self.assertTrue(
            self.complaints[-1].endswith("sending 2 lines typed meanwhile (2 dropped)"),
            self.complaints,
        )

    def test_input_ends_while_disconnected(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.lose(protocol)
        self.link.send(b"one\ntwo\n")
        self.link.end_input()
        self.assertEqual(
            self.complaints[-1],
            "input ended while disconnected from tcp:host=127.0.0.1:port=6667; "
            "2 lines not sent",
        )
        self.assertEqual(self.status(), 1)
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), 1)

    def test_input_ends_before_first_connection(self) -> None:
        self.link.end_input()
        self.assertEqual(self.status(), 1)
        self.assertFalse(self.successResultOf(self.link.connected_once))

    def test_quit_while_disconnected(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.lose(protocol)
        self.link.send(b"/quit\n")
        self.assertEqual(self.status(), 0)
        self.assertEqual(len(self.complaints), 1)

    def test_quit_with_unsent_lines(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.lose(protocol)
        self.link.send(b"hello\n/quit\n")
        self.assertEqual(self.status(), 1)
        self.assertEqual(
            self.complaints[-1],
            "quitting while disconnected; 1 line typed meanwhile not sent",
        )

    def test_quit_ends_session(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.link.send(b"/quit\n")
        protocol.dataReceived(b"*** Goodbye.\r\n")
        self.lose(protocol)
        self.assertEqual(self.status(), 0)
        self.assertEqual(self.complaints, [])
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), 1)

    def test_end_of_input_ends_session(self) -> None:
        protocol, transport = self.connect(WELCOME)
        self.link.send(b"last line, no newline")
        self.assertEqual(transport.value(), b"")
        self.link.end_input()
        # StringTransport cannot half-close: the end of input is a /quit.
        self.assertEqual(transport.value(), b"last line, no newline\n/quit\n")
        self.lose(protocol)
        self.assertEqual(self.status(), 0)

    def test_loss_after_end_of_input(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.link.end_input()
        self.lose(protocol, ConnectionLost())
        self.assertEqual(self.status(), 1)
        self.assertEqual(
            self.complaints,
            [
                "connection lost: Connection to the other side was lost in a "
                "non-clean fashion."
            ],
        )

    def test_output_closed(self) -> None:
        protocol, transport = self.connect(WELCOME)
        self.link.close()
        self.assertTrue(transport.disconnecting)
        self.lose(protocol)
        self.assertEqual(self.status(), 0)

    def test_output_closed_while_disconnected(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.lose(protocol)
        self.link.close()
        self.assertEqual(self.status(), 0)

    def test_tls_failure_is_final(self) -> None:
        self.link = self.make_link(tls_server="127.0.0.1:6697")
        protocol, _ = self.endpoint.succeed()
        self.lose(
            protocol, SSL.Error([("SSL routines", "", "certificate verify failed")])
        )
        self.assertEqual(
            self.complaints,
            ["TLS handshake with 127.0.0.1:6697 failed: certificate verify failed"],
        )
        self.assertEqual(self.status(), 1)
        attempts = len(self.endpoint.attempts)
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), attempts)

    def test_abandon(self) -> None:
        """
        The client being stopped (Ctrl-C) ends the session quietly, and no
        reconnection is attempted.
        """
        protocol, transport = self.connect(WELCOME)
        self.link.abandon()
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(self.link.done)
        self.lose(protocol, ConnectionLost())
        self.assertEqual(self.status(), 1)
        self.assertEqual(self.complaints, [])
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), 1)

    def test_abandon_while_disconnected(self) -> None:
        protocol, _ = self.connect(WELCOME)
        self.lose(protocol)
        self.link.abandon()
        self.link.abandon()
        self.assertEqual(self.status(), 1)
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), 1)

    def test_server_shutting_down(self) -> None:
        protocol, _ = self.connect(WELCOME, "*** The server is shutting down. Goodbye.")
        self.lose(protocol)
        self.assertEqual(
            self.complaints,
            ["connection lost (the server is shutting down); reconnecting..."],
        )

    def test_partial_output_line_ended_at_loss(self) -> None:
        protocol, _ = self.connect(WELCOME)
        protocol.dataReceived(b"[lobby] <bob> cut sh")
        self.lose(protocol)
        self.assertTrue(b"".join(self.output).endswith(b"<bob> cut sh\n"))

    def test_lost_while_restoring(self) -> None:
        """
        A connection lost before the restored session was confirmed: the
        next one restores the original session, not the half-restored one.
        """
        protocol, _ = self.connect(
            WELCOME,
            "*** You are now known as alice.",
            "*** Now talking in python (1 member).",
        )
        self.lose(protocol)
        self.clock.advance(1)
        protocol, transport = self.connect(WELCOME, "*** You are now known as alice.")
        self.assertEqual(transport.value(), b"/nick alice\n/join python\n")
        self.lose(protocol)
        self.clock.advance(1)
        protocol, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"/nick alice\n/join python\n")
        protocol.dataReceived(
            b"*** You are now known as alice.\r\n"
            b"*** Now talking in python (1 member).\r\n"
        )
        # Restored: from now on the session is what the server says.
        protocol.dataReceived(b"*** You left python; now talking in lobby.\r\n")
        self.lose(protocol)
        self.clock.advance(1)
        _, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"/nick alice\n")

    def test_chatting_keeps_restoring(self) -> None:
        """
        Chat lines do not change the session: a restore cut short is still
        completed next time.
        """
        protocol, _ = self.connect(WELCOME, "*** Now talking in python (1 member).")
        self.lose(protocol)
        self.clock.advance(1)
        protocol, transport = self.connect(WELCOME)
        self.link.send(b"hello\n/msg bob hi\n")
        self.lose(protocol)
        self.clock.advance(1)
        _, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"/join python\n")

    def test_typing_supersedes_restoring(self) -> None:
        protocol, _ = self.connect(WELCOME, "*** You are now known as alice.")
        self.lose(protocol)
        self.clock.advance(1)
        protocol, transport = self.connect(WELCOME, "!!! The nickname alice is taken.")
        self.link.send(b"/nick bob\n")
        protocol.dataReceived(b"*** You are now known as bob.\r\n")
        self.lose(protocol)
        self.clock.advance(1)
        _, transport = self.connect(WELCOME)
        self.assertEqual(transport.value(), b"/nick bob\n")


# The terminal


class LineEditorTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.editor = LineEditor()

    def test_typing(self) -> None:
        self.assertEqual(self.editor.feed(b"hel"), [])
        self.assertEqual(self.editor.text, "hel")
        self.assertEqual(self.editor.feed(b"lo\rnext"), ["hello"])
        self.assertEqual(self.editor.text, "next")

    def test_enter(self) -> None:
        self.assertEqual(
            self.editor.feed(b"a\nb\rc\r\nd\n\n"), ["a", "b", "c", "d", ""]
        )

    def test_crlf_split(self) -> None:
        self.assertEqual(self.editor.feed(b"a\r"), ["a"])
        self.assertEqual(self.editor.feed(b"\nb\n"), ["b"])

    def test_utf8_split_across_reads(self) -> None:
        data = "héllo wörld €".encode()
        for i in range(len(data)):
            self.editor.feed(data[i : i + 1])
        self.assertEqual(self.editor.text, "héllo wörld €")

    def test_invalid_utf8(self) -> None:
        self.editor.feed(b"a\xffb")
        self.assertEqual(self.editor.text, "a\ufffdb")

    def test_backspace(self) -> None:
        self.editor.feed(b"abc\x7f\x7fd\x08e")
        self.assertEqual(self.editor.text, "ae")
        self.editor.feed(b"\x7f\x7f\x7f")
        self.assertEqual(self.editor.text, "")

    def test_backspace_removes_combining_marks_with_their_letter(self) -> None:
        self.editor.feed("xe\u0301".encode())
        self.editor.feed(b"\x7f")
        self.assertEqual(self.editor.text, "x")

    def test_kill_line_and_word(self) -> None:
        self.editor.feed(b"say hello  there  \x17")
        self.assertEqual(self.editor.text, "say hello  ")
        self.editor.feed(b"\x17")
        self.assertEqual(self.editor.text, "say ")
        self.editor.feed(b"\x15")
        self.assertEqual(self.editor.text, "")

    def test_ctrl_d(self) -> None:
        self.editor.feed(b"abc\x04")
        self.assertFalse(self.editor.ended)
        self.assertEqual(self.editor.text, "abc")
        self.assertEqual(self.editor.feed(b"\n\x04more\n"), ["abc"])
        self.assertTrue(self.editor.ended)
        self.assertEqual(self.editor.feed(b"x\n"), [])

    def test_escape_sequences_are_ignored(self) -> None:
        # Arrows (CSI and SS3), Delete, F5, Alt-x.
        self.editor.feed(b"a\x1b[Ab\x1bOBc\x1b[3~d\x1b[15;2~e\x1bxf")
        self.assertEqual(self.editor.text, "abcdef")

    def test_escape_split_across_reads(self) -> None:
        for data in (b"a\x1b", b"[", b"1", b";5", b"D", b"b"):
            self.editor.feed(data)
        self.assertEqual(self.editor.text, "ab")

    def test_stray_escape_keeps_enter(self) -> None:
        """
        Escape, then Enter: the line is still sent, as Enter after a
        broken sequence is.
        """
        self.assertEqual(self.editor.feed(b"hello\x1b\r"), ["hello"])
        self.assertEqual(self.editor.feed(b"ab\x1b[1\r"), ["ab"])
        self.assertEqual(self.editor.feed(b"cd\x1b\x7fe"), [])
        self.assertEqual(self.editor.text, "ce")

    def test_broken_escape(self) -> None:
        self.editor.feed(b"\x1b[1\rx")
        self.assertEqual(self.editor.text, "x")

    def test_control_characters_are_ignored(self) -> None:
        self.editor.feed(b"a\x00\x01\x07\tb\x1f")
        self.assertEqual(self.editor.text, "ab")

    def test_redraw(self) -> None:
        self.editor.feed(b"ab\x0c")
        self.assertTrue(self.editor.redraw)
        self.assertEqual(self.editor.text, "ab")


class DisplayTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.written: list[bytes] = []
        self.columns = 80
        self.display = Display(self.written.append, lambda: self.columns)

    def screen(self) -> bytes:
        data = b"".join(self.written)
        self.written.clear()
        return data

    def test_echo(self) -> None:
        self.display.show_input("he")
        self.display.show_input("hel")
        self.assertEqual(self.screen(), b"hel")

    def test_edit_redraws(self) -> None:
        self.display.show_input("hel")
        self.screen()
        self.display.show_input("he")
        self.assertEqual(self.screen(), b"\r\x1b[Khe")
        self.display.show_input("")
        self.assertEqual(self.screen(), b"\r\x1b[K")

    def test_output_keeps_typed_line_below(self) -> None:
        self.display.show_input("hel")
        self.screen()
        self.display.output(b"[lobby] <bob> hi\n")
        self.assertEqual(self.screen(), b"\r\x1b[K[lobby] <bob> hi\nhel")

    def test_output_without_typed_line(self) -> None:
        self.display.output(b"one\ntwo\n")
        self.assertEqual(self.screen(), b"one\ntwo\n")

    def test_partial_output_waits_for_its_end(self) -> None:
        self.display.show_input("x")
        self.screen()
        self.display.output(b"one\ntw")
        self.assertEqual(self.screen(), b"\r\x1b[Kone\nx")
        self.display.output(b"o")
        self.assertEqual(self.screen(), b"")
        self.display.output(b"\n")
        self.assertEqual(self.screen(), b"\r\x1b[Ktwo\nx")

    def test_wrapped_typed_line(self) -> None:
        self.columns = 10
        self.display.show_input("a" * 25)
        self.screen()
        self.display.output(b"line\n")
        self.assertEqual(self.screen(), b"\r\x1b[2A\x1b[Jline\n" + b"a" * 25)
        # A line exactly as wide as the terminal ends on its own row.
        self.display.show_input("b" * 10)
        self.assertEqual(self.screen(), b"\r\x1b[2A\x1b[J" + b"b" * 10)
        self.display.output(b"line\n")
        self.assertEqual(self.screen(), b"\r\x1b[Kline\n" + b"b" * 10)

    def test_wide_characters(self) -> None:
        self.assertEqual(display_width("日本語 ok"), 9)
        self.assertEqual(display_width("e\u0301"), 1)
        self.columns = 4
        self.display.show_input("日本語")
        self.screen()
        self.display.output(b"x\n")
        self.assertEqual(self.screen(), b"\r\x1b[1A\x1b[Jx\n" + "日本語".encode())

    def test_enter_keeps_the_line(self) -> None:
        self.display.show_input("hello")
        self.display.enter("hello")
        self.display.output(b"reply\n")
        self.assertEqual(self.screen(), b"hello\nreply\n")

    def test_interject(self) -> None:
        self.display.show_input("ab")
        self.screen()
        self.display.interject(b"chat-client: note\n")
        self.assertEqual(self.screen(), b"\r\x1b[Kchat-client: note\nab")

    def test_finish(self) -> None:
        self.display.output(b"partial")
        self.display.show_input("unsent")
        self.screen()
        self.display.finish()
        self.assertEqual(self.screen(), b"\r\x1b[Kpartial\nunsent\n")
        self.assertFalse(self.display.showing_input)

    def test_forget(self) -> None:
        self.display.output(b"partial")
        self.display.show_input("unsent")
        self.display.forget()
        self.screen()
        self.display.finish()
        self.assertEqual(self.screen(), b"")
        self.assertFalse(self.display.showing_input)

    def test_redraw_and_show_again(self) -> None:
        self.display.show_input("ab")
        self.screen()
        self.display.redraw()
        self.assertEqual(self.screen(), b"\x1b[H\x1b[2Jab")
        self.display.show_again()
        self.assertEqual(self.screen(), b"\r\x1b[Kab")


class FakeLink:
    def __init__(self) -> None:
        self.sent = b""
        self.ended = 0
        self.closed = 0

    def send(self, data: bytes) -> None:
        self.sent += data

    def end_input(self) -> None:
        self.ended += 1

    def close(self) -> None:
        self.closed += 1


class InteractiveTerminalTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.link = FakeLink()
        self.written: list[bytes] = []
        self.terminal = InteractiveTerminal(
            self.link, Display(self.written.append, lambda: 80)
        )
        self.terminal.makeConnection(StringTransport())

    def test_lines_are_sent_whole(self) -> None:
        self.terminal.dataReceived(b"hel")
        self.assertEqual(self.link.sent, b"")
        self.terminal.dataReceived(b"lo\x7f\x7flo\rsecond\r")
        self.assertEqual(self.link.sent, b"hello\nsecond\n")
        # Keys read together are shown together: the line as entered.
        self.assertEqual(b"".join(self.written), b"hello\nsecond\n")
        self.terminal.dataReceived(b"ab\x7f")
        self.assertEqual(b"".join(self.written)[-1:], b"a")

    def test_quit(self) -> None:
        self.terminal.dataReceived(b"/quit bye\r")
        self.assertTrue(self.terminal.ended)
        self.assertEqual(self.link.ended, 0)

    def test_ctrl_d(self) -> None:
        self.terminal.dataReceived(b"x\x04")
        self.assertEqual(self.link.ended, 0)
        self.terminal.dataReceived(b"\x7f\x04")
        self.assertTrue(self.terminal.ended)
        self.assertEqual(self.link.ended, 1)
        # The real end of input later does not end it twice.
        self.terminal.readConnectionLost()
        self.assertEqual(self.link.ended, 1)

    def test_ctrl_l(self) -> None:
        self.terminal.dataReceived(b"ab\x0c")
        self.assertTrue(b"".join(self.written).endswith(b"\x1b[H\x1b[2Jab"))


class FakeStdio:
    """
    Standard input and output for a L{Console}, in memory.
    """

    def __init__(self, protocol: Protocol, reactor: object) -> None:
        self.protocol = protocol
        self.written = b""
        self.closed = False
        protocol.makeConnection(StringTransport())

    def write(self, data: bytes) -> None:
        self.written += data

    def loseConnection(self) -> None:
        self.closed = True
        self.protocol.connectionLost(Failure(ConnectionDone()))


class ConsoleTests(unittest.SynchronousTestCase):
    def test_piped(self) -> None:
        """
        On pipes, output is written as it comes and input is passed on as
        it is read, byte for byte.
        """
        stdio: list[FakeStdio] = []

        def factory(protocol: Protocol, reactor: object) -> FakeStdio:
            stdio.append(FakeStdio(protocol, reactor))
            return stdio[-1]

        link = FakeLink()
        console = client.Console(
            MemoryReactor(),
            link,
            interactive=False,
            stdio_factory=factory,  # type: ignore[arg-type]
        )
        self.assertIsNone(console.display)
        console.output(b"partial output")
        console.terminal.dataReceived(b"typed\x7f")
        self.assertEqual(stdio[0].written, b"partial output")
        self.assertEqual(link.sent, b"typed\x7f")
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        console.complain("note")
        self.assertEqual(stderr.getvalue(), "chat-client: note\n")
        closing = Deferred.fromCoroutine(console.close())
        self.assertIsNone(self.successResultOf(closing))
        self.assertTrue(stdio[0].closed)


class TerminalModeTests(unittest.SynchronousTestCase):
    """
    L{TerminalMode} on a pseudo-terminal of this process.
    """

    def setUp(self) -> None:
        master, self.slave = os.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, self.slave)
        self.original = termios.tcgetattr(self.slave)

    def test_enter_and_restore(self) -> None:
        mode = TerminalMode(self.slave)
        mode.enter()
        self.assertTrue(mode.active)
        attributes = termios.tcgetattr(self.slave)
        self.assertFalse(attributes[3] & termios.ICANON)
        self.assertFalse(attributes[3] & termios.ECHO)
        self.assertTrue(attributes[3] & termios.ISIG)
        self.assertTrue(attributes[1] & termios.OPOST)
        self.assertEqual(attributes[6][termios.VMIN], 1)
        mode.restore()
        mode.restore()
        self.assertFalse(mode.active)
        self.assertEqual(termios.tcgetattr(self.slave), self.original)

    def test_suspend(self) -> None:
        """
        On Ctrl-Z the terminal is restored before the process stops, and
        taken back (and the screen redrawn) when it continues.
        """
        seen: list[tuple[int, bool]] = []

        def kill(pid: int, signum: int) -> None:
            icanon = bool(termios.tcgetattr(self.slave)[3] & termios.ICANON)
            seen.append((signum, icanon))

        resumed: list[None] = []
        mode = TerminalMode(self.slave, kill=kill)
        mode.resumed = lambda: resumed.append(None)
        previous = signal.getsignal(signal.SIGTSTP)
        mode.enter()
        mode.handle_suspend()
        try:
            handler = signal.getsignal(signal.SIGTSTP)
            assert callable(handler)
            handler(signal.SIGTSTP, None)
        finally:
            mode.unhandle_suspend()
            mode.restore()
        self.assertEqual(seen, [(signal.SIGTSTP, True)])
        self.assertEqual(resumed, [None])
        self.assertEqual(signal.getsignal(signal.SIGTSTP), previous)

    def test_restore_after_hangup(self) -> None:
        master, slave = os.openpty()
        mode = TerminalMode(slave)
        mode.enter()
        os.close(slave)
        os.close(master)
        mode.restore()
        self.assertFalse(mode.active)


# The installed client, as a subprocess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_PORT = re.compile(r"port=(\d+)")


def run_client(
    *args: str, input: bytes, cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(CHAT_CLIENT), *args],
        input=input,
        capture_output=True,
        cwd=cwd,
        timeout=TIMEOUT * 4,
    )


class TLSClientTests(unittest.SynchronousTestCase):
    """
    chat-client against a server with a TCP and a TLS listener.
    """

    def setUp(self) -> None:
        self.files = CertificateFiles(self)
        self.server = ServerProcess(
            self,
            "tcp:0:interface=127.0.0.1",
            f"ssl:0:interface=127.0.0.1:privateKey={self.files.key}"
            f":certKey={self.files.cert}",
            options=["--database", ":memory:"],
        )
        match = _PORT.search(self.server.addresses[1])
        assert match is not None and self.server.tcp_port is not None
        self.tls_port = match.group(1)
        self.cwd = make_temp_dir(self)

    def check_session(self, *args: str, stderr: bytes = b"") -> None:
        """
        Pipe two lines through chat-client with C{args}: both are handled,
        every reply printed, and it exits 0 (promptly, not after the
        server's 10 s grace for a TLS close).
        """
        assert self.server.tcp_port is not None
        watcher = SocketClient(self, self.server.tcp_port)
        watcher.welcome()
        started = time.monotonic()
        result = run_client(*args, input=b"/nick dave\nhello\n", cwd=self.cwd)
        self.assertLess(time.monotonic() - started, TIMEOUT)
        self.assertEqual((result.returncode, result.stderr), (0, stderr), result)
        lines = result.stdout.decode().splitlines()
        self.assertRegex(lines[0], r"^\*\*\* Welcome to chatservice, guest\d+!")
        self.assertEqual(lines[-2:], ["*** You are now known as dave.", "*** Goodbye."])
        watcher.read_until(lambda line: line.endswith(b" is now known as dave\r\n"))
        self.assertEqual(watcher.read_line(), b"[lobby] <dave> hello\r\n")

    def test_sessions(self) -> None:
        """
        Piped sessions over TLS, each way of trusting the server: every
        line is handled and every reply printed (the end of input is a
        /quit, as TLS cannot half-close), and the client exits 0.
        """
        # trustRoots= loads every *.pem of a directory; keep the key apart.
        roots = make_temp_dir(self)
        (roots / "ca.pem").write_bytes(self.files.cert.read_bytes())
        port = self.tls_port
        cert = str(self.files.cert)
        for args in [
            ["--tls", "--ca-file", cert, "127.0.0.1", port],
            ["--connect", f"tls:host=localhost:port={port}:trustRoots={roots}"],
            ["--ca-file", cert, "--connect", f"tls:host=localhost:port={port}"],
            ["--reconnect", "--tls", "--ca-file", cert, "localhost", port],
        ]:
            self.check_session(*args)
        self.check_session(
            "--tls",
            "--insecure",
            "127.0.0.1",
            port,
            stderr=f"chat-client: {INSECURE_WARNING}\n".encode(),
        )

    def test_verification_failures(self) -> None:
        """
        A certificate that is not trusted, or not for the name asked for,
        ends the client with one line and status 1, before anything is
        sent.
        """
        port = self.tls_port
        untrusted = (
            ["--tls", "127.0.0.1", port],
            f"TLS handshake with 127.0.0.1:{port} failed: certificate verify failed",
        )
        cases = [
            untrusted,
            (
                ["--tls", "--ca-file", str(self.files.other), "localhost", port],
                f"TLS handshake with localhost:{port} failed: "
                "certificate verify failed",
            ),
            (
                [
                    "--ca-file",
                    str(self.files.cert),
                    "--connect",
                    rf"tls:host=example.com:port={port}:endpoint=tcp\:127.0.0.1\:{port}",
                ],
                f"TLS handshake with example.com:{port} failed: the server's "
                "certificate is not valid for example.com",
            ),
            # Not retried with --reconnect: it would fail the same way.
            (["--reconnect", *untrusted[0]], untrusted[1]),
        ]
        for args, message in cases:
            result = run_client(*args, input=b"hello\n", cwd=self.cwd)
            self.assertEqual(
                (result.returncode, result.stdout, result.stderr.decode()),
                (1, b"", f"chat-client: {message}\n"),
            )

        # TLS to a port that does not speak it.
        assert self.server.tcp_port is not None
        result = run_client(
            "--tls",
            "--insecure",
            "127.0.0.1",
            str(self.server.tcp_port),
            input=b"",
            cwd=self.cwd,
        )
        self.assertEqual(result.returncode, 1)
        self.assertRegex(
            result.stderr.decode().splitlines()[-1],
            rf"^chat-client: TLS handshake with 127\.0\.0\.1:{self.server.tcp_port} "
            "failed: .+",
        )
        self.assertNotIn(b"Traceback", result.stderr)


class ReconnectTests(unittest.SynchronousTestCase):
    def start_server(self, port: int, database: Path) -> ServerProcess:
        return ServerProcess(
            self,
            f"tcp:{port}:interface=127.0.0.1",
            options=["--database", str(database)],
        )

    def start_first_server(self, database: Path) -> tuple[int, ServerProcess]:
        """
        A server on a port number of its own, which a restart can listen on
        again. The port was free a moment ago; if someone took it since,
        try another.
        """
        for attempt in range(2):
            port = free_port()
            try:
                return port, self.start_server(port, database)
            except AssertionError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def start_client(self, port: int) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [str(CHAT_CLIENT), "--reconnect", "127.0.0.1", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=make_temp_dir(self),
        )
        self.addCleanup(stop_process, process)
        return process

    def test_reconnect_after_server_restart(self) -> None:
        """
        The server restarts under a client with --reconnect: the client
        says so, connects to the new server, logs in again and rejoins its
        room, and goes on chatting.
        """
        database = make_temp_dir(self) / "chat.sqlite3"
        port, server = self.start_first_server(database)
        process = self.start_client(port)
        assert process.stdin and process.stdout and process.stderr
        read_until(process.stdout, re.compile(rb"^\*\*\* Welcome"))
        process.stdin.write(b"/nick alice\n/register wonderland1\n/join python\n")
        process.stdin.flush()
        read_until(process.stdout, re.compile(rb"^\*\*\* Now talking in python"))

        server.stop()
        read_until(
            process.stderr,
            re.compile(rb"^chat-client: connection lost \(.+\); reconnecting\.\.\.$"),
        )
        self.start_server(port, database)
        _, err = read_until(process.stderr, re.compile(rb"reconnected to"))
        self.assertIn(
            f"chat-client: reconnected to tcp:host=127.0.0.1:port={port}; restoring "
            "nickname alice (logging in), rooms lobby, python\n",
            err.decode(),
        )
        _, out = read_until(
            process.stdout, re.compile(rb"^\*\*\* Now talking in python")
        )
        self.assertIn(b"*** You are logged in as alice.\n", out)

        watcher = SocketClient(self, port)
        watcher.welcome()
        watcher.send(b"/join python\r\n")
        watcher.read_until(lambda line: line.startswith(b"*** Now talking in python"))
        process.stdin.write(b"hello again\n")
        process.stdin.close()
        self.assertEqual(watcher.read_line(), b"[python] <alice> hello again\r\n")
        self.assertEqual(process.wait(timeout=TIMEOUT), 0)

    def test_input_ends_while_disconnected(self) -> None:
        port, server = self.start_first_server(Path(":memory:"))
        process = self.start_client(port)
        assert process.stdin and process.stdout and process.stderr
        read_until(process.stdout, re.compile(rb"^\*\*\* Welcome"))
        server.stop()
        read_until(process.stderr, re.compile(rb"reconnecting\.\.\.$"))
        process.stdin.write(b"one\ntwo\n")
        process.stdin.close()
        self.assertEqual(process.wait(timeout=TIMEOUT), 1)
        self.assertEqual(
            process.stderr.read().decode(),
            f"chat-client: input ended while disconnected from "
            f"tcp:host=127.0.0.1:port={port}; 2 lines not sent\n",
        )


class InterruptTests(unittest.SynchronousTestCase):
    def test_interrupted_quietly(self) -> None:
        """
        Ctrl-C (SIGINT) ends the client with status 1 and nothing said:
        no "connection lost", no traceback.
        """
        server = ServerProcess(self, options=["--database", ":memory:"])
        for extra in ([], ["--reconnect"]):
            process = subprocess.Popen(
                [str(CHAT_CLIENT), *extra, "127.0.0.1", str(server.tcp_port)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=make_temp_dir(self),
            )
            self.addCleanup(stop_process, process)
            assert process.stdout is not None
            read_until(process.stdout, re.compile(rb"^\*\*\* Welcome"))
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=TIMEOUT)
            self.assertEqual((process.returncode, err), (1, b""), extra)


class InteractiveTests(unittest.SynchronousTestCase):
    def read_pty(self, fd: int, expected: bytes, seen: bytearray) -> None:
        """
        Read the pseudo-terminal C{fd} into C{seen} until C{expected} is in
        it.
        """
        import select

        deadline = time.monotonic() + TIMEOUT
        while expected not in seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.fail(f"{expected!r} not shown; the terminal shows {bytes(seen)!r}")
            readable, _, _ = select.select([fd], [], [], remaining)
            if readable:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    self.fail(f"end of output before {expected!r}: {bytes(seen)!r}")
                seen += chunk

    def test_incoming_line_does_not_break_typed_line(self) -> None:
        server = ServerProcess(self, options=["--database", ":memory:"])
        assert server.tcp_port is not None
        watcher = SocketClient(self, server.tcp_port)
        watcher.welcome()
        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        original = termios.tcgetattr(slave)
        process = subprocess.Popen(
            [str(CHAT_CLIENT), "127.0.0.1", str(server.tcp_port)],
            stdin=slave,
            stdout=slave,
            stderr=subprocess.PIPE,
            cwd=make_temp_dir(self),
        )
        self.addCleanup(stop_process, process)
        seen = bytearray()
        self.read_pty(master, b"*** Welcome", seen)
        joined = watcher.read_line()
        guest = re.fullmatch(rb"\[lobby\] --> (guest\d+) joined\r\n", joined)
        assert guest is not None, joined

        os.write(master, b"hel")
        self.read_pty(master, b"hel", seen)
        watcher.send(b"hi there\r\n")
        self.read_pty(master, b"<guest1> hi there", seen)
        self.read_pty(master, b"\r\x1b[K[lobby] <guest1> hi there\r\nhel", seen)

        os.write(master, b"lo\r")
        self.assertEqual(
            watcher.read_line(), b"[lobby] <" + guest.group(1) + b"> hello\r\n"
        )
        self.read_pty(master, b"hello\r\n", seen)
        os.write(master, b"\x04")
        self.read_pty(master, b"*** Goodbye.\r\n", seen)
        self.assertEqual(process.wait(timeout=TIMEOUT), 0)
        assert process.stderr is not None
        self.assertEqual(process.stderr.read(), b"")
        self.assertEqual(termios.tcgetattr(slave), original)
