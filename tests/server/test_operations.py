"""
Operations, end to end: the installed C{twistd -n chat} run the way an
operator runs it, with TLS (and its reload on SIGHUP), IPv6, Prometheus
metrics, an orderly stop on SIGTERM and SIGINT, JSON logs and a message of
the day. Every wait is bounded by a deadline; nothing sleeps.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import select
import signal
import socket
import sqlite3
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial import unittest

from tests.support.certs import common_name, make_certificate
from tests.support.helpers import (
    TIMEOUT,
    TWISTD,
    ServerProcess,
    SocketClient,
    make_temp_dir,
    stop_process,
)

GOODBYE = b"*** The server is shutting down. Goodbye.\r\n"


def too_many(limit: int) -> bytes:
    """The line a connection over --max-per-ip gets."""
    return (
        f"!!! Too many connections from your address (the limit is {limit}); "
        "try again later.\r\n"
    ).encode()


# Clients


class Client(SocketClient):
    """
    A L{SocketClient} over TCP (IPv4 or IPv6, with a chosen receive
    buffer) or TLS, which can also check the lines it is sent.
    """

    @classmethod
    def tcp(
        cls,
        testcase: unittest.SynchronousTestCase,
        port: int,
        host: str = "127.0.0.1",
        rcvbuf: int | None = None,
    ) -> Client:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                # Before connecting, so that the window offered is small.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(TIMEOUT)
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return cls(testcase, sock=sock)

    @classmethod
    def tls(
        cls,
        testcase: unittest.SynchronousTestCase,
        port: int,
        *trusted: Path,
    ) -> Client:
        """
        A TLS connection to 127.0.0.1 that verifies the server's certificate
        (and its name) against the certificates C{trusted}.
        """
        context = ssl.create_default_context(
            cadata="".join(path.read_text() for path in trusted)
        )
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        try:
            sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        except BaseException:
            raw.close()
            raise
        return cls(testcase, sock=sock)

    @property
    def local_port(self) -> int:
        return int(self.sock.getsockname()[1])

    def peer_common_name(self) -> str:
        """
        The common name of the certificate the TLS server presented.
        """
        assert isinstance(self.sock, ssl.SSLSocket)
        der = self.sock.getpeercert(binary_form=True)
        assert der is not None
        return common_name(ssl.DER_cert_to_PEM_cert(der).encode("ascii"))

    def expect(self, *lines: str | bytes) -> None:
        """
        The next lines are exactly C{lines} (without their CRLF).
        """
        for line in lines:
            wanted = line.encode() if isinstance(line, str) else line
            got = self.read_line()
            if got != wanted + b"\r\n":
                raise unittest.FailTest(f"expected {wanted!r}, got {got!r}")


class Log:
    """
    The server's standard output, read as it comes. C{mark()} notes a
    place; L{wait_for} looks for a line after a place, reading more until a
    deadline.
    """

    def __init__(self, process: subprocess.Popen[bytes], already: bytes = b"") -> None:
        assert process.stdout is not None
        self.process = process
        self.fd = process.stdout.fileno()
        self.data = already
        self.ended = False

    def mark(self) -> int:
        return len(self.data)

    def _read(self, deadline: float) -> bool:
        """
        Read what comes before C{deadline}; False at the deadline or at the
        end of the output.
        """
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.ended:
            return False
        readable, _, _ = select.select([self.fd], [], [], remaining)
        if not readable:
            return False
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.ended = True
            return False
        self.data += chunk
        return True

    def wait_for(
        self, pattern: bytes, since: int = 0, timeout: float = TIMEOUT
    ) -> re.Match[bytes]:
        """
        The first whole line after position C{since} that C{pattern}
        matches.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            whole = self.data[since : self.data.rfind(b"\n") + 1]
            match = regex.search(whole)
            if match is not None:
                return match
            if not self._read(deadline):
                raise unittest.FailTest(
                    f"no log line matching {pattern!r}; log since the mark:\n"
                    + self.data[since:].decode("utf-8", "replace")
                )

    def read_to_end(self, timeout: float = TIMEOUT * 2) -> bytes:
        """
        Everything up to the end of the output, which must come before the
        deadline.
        """
        deadline = time.monotonic() + timeout
        while not self.ended:
            if not self._read(deadline) and not self.ended:
                raise unittest.FailTest(
                    "the server's output did not end:\n"
                    + self.data.decode("utf-8", "replace")
                )
        return self.data

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def server_log(server: ServerProcess) -> Log:
    return Log(server.process, server.output)


def wait_for_exit(
    testcase: unittest.SynchronousTestCase,
    process: subprocess.Popen[bytes],
    log: Log,
    timeout: float,
) -> float:
    """
    Wait for C{process} to exit and its output to end; return how long that
    took. Fails, with the log, if it does not exit in C{timeout} seconds.
    """
    started = time.monotonic()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Kill it now rather than wait for the cleanup's patience: what it
        # logged so far tells why it is stuck.
        process.kill()
        process.wait()
        log.read_to_end()
        raise unittest.FailTest(
            f"the server did not exit within {timeout} s:\n{log.text()}"
        ) from None
    elapsed = time.monotonic() - started
    log.read_to_end()
    testcase.assertNotIn("Traceback", log.text())
    return elapsed


def listening_ports(pid: int) -> set[int] | None:
    """
    The TCP ports process C{pid} listens on, from C{/proc}; None where there
    is no C{/proc} to tell.
    """
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    inodes = set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(match.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # LISTEN
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def assert_listening(
    testcase: unittest.SynchronousTestCase, server: ServerProcess, ports: set[int]
) -> None:
    """
    The server listens on exactly C{ports} (where C{/proc} can tell).
    """
    found = listening_ports(server.process.pid)
    if found is not None:
        testcase.assertEqual(found, ports)


def refused_connection(
    testcase: unittest.SynchronousTestCase, port: int, host: str = "127.0.0.1"
) -> None:
    """
    Nothing accepts connections on C{host}:C{port}.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        testcase.assertRaises(ConnectionRefusedError, sock.connect, (host, port))


# TLS


_TLS_PORT = re.compile(rb"\(TLS\) starting on (\d+)")


def replace_files(pairs: list[tuple[Path, bytes]]) -> None:
    """
    Give each path new contents, atomically, as a deploy script would.
    """
    for path, data in pairs:
        temporary = path.with_name(path.name + ".new")
        temporary.write_bytes(data)
        os.replace(temporary, path)


class TLSTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.certs = make_temp_dir(self)
        self.first_key, self.first_cert = make_certificate(
            self.certs, "first", "first.chat.test"
        )
        self.second_key, self.second_cert = make_certificate(
            self.certs, "second", "second.chat.test"
        )
        # What the server reads: a copy that the tests replace.
        live = make_temp_dir(self)
        self.key = live / "key.pem"
        self.cert = live / "cert.pem"
        replace_files(
            [
                (self.key, self.first_key.read_bytes()),
                (self.cert, self.first_cert.read_bytes()),
            ]
        )
        self.server = ServerProcess(
            self,
            "tcp:0:interface=127.0.0.1",
            f"ssl:0:interface=127.0.0.1:privateKey={self.key}:certKey={self.cert}",
            options=["--database", ":memory:"],
        )
        self.log = server_log(self.server)
        match = _TLS_PORT.search(self.server.output)
        assert match is not None, self.server.output
        self.tls_port = int(match.group(1))
        ports = {
            int(port) for port in re.findall(r"port=(\d+)", str(self.server.addresses))
        }
        (self.plain_port,) = ports - {self.tls_port}

    def test_tlsAndPlainShareTheLobby(self) -> None:
        """
        A TLS client, which verifies the server's certificate, and a plain
        TCP client are in one lobby: lines go both ways. The server listens
        on those two ports and nothing else (no metrics without --metrics).
        """
        secure = Client.tls(self, self.tls_port, self.first_cert)
        self.assertEqual(secure.peer_common_name(), "first.chat.test")
        secure_nick = secure.welcome()
        plain = Client.tcp(self, self.plain_port)
        plain_nick = plain.welcome()
        secure.expect(f"[lobby] --> {plain_nick} joined")

        secure.send("over TLS: héllo\n".encode())
        plain.expect(f"[lobby] <{secure_nick}> over TLS: héllo")
        plain.send(b"over plain TCP\r\n")
        secure.expect(f"[lobby] <{plain_nick}> over plain TCP")

        secure.send(b"/who\n")
        secure.expect(f"*** lobby (2 members): @{secure_nick}, {plain_nick}")

        self.assertNotIn(b"Metrics server listening", self.log.data)
        assert_listening(self, self.server, {self.plain_port, self.tls_port})

    def reload(self) -> int:
        """
        SIGHUP the server and wait until it has tried to reload the
        certificate; return where in the log that began.
        """
        since = self.log.mark()
        self.server.process.send_signal(signal.SIGHUP)
        self.log.wait_for(
            rb"Reloaded the TLS certificate|Could not reload the TLS certificate",
            since,
        )
        return since

    def test_sighupReloadsTheCertificate(self) -> None:
        """
        After the files are replaced and the server gets SIGHUP, new TLS
        connections get the new certificate; a connection made before keeps
        chatting. A bad replacement (garbage, or a certificate that does not
        match the key) is logged and the certificate in use stays in use.
        """
        old = Client.tls(self, self.tls_port, self.first_cert)
        self.assertEqual(old.peer_common_name(), "first.chat.test")
        old_nick = old.welcome()
        plain = Client.tcp(self, self.plain_port)
        plain_nick = plain.welcome()
        old.expect(f"[lobby] --> {plain_nick} joined")

        replace_files(
            [
                (self.key, self.second_key.read_bytes()),
                (self.cert, self.second_cert.read_bytes()),
            ]
        )
        since = self.reload()
        line = self.log.wait_for(rb".*Reloaded the TLS certificate.*", since)
        self.assertIn(b"second.chat.test", line.group())
        self.assertNotIn(b"Could not reload", self.log.data[since:])

        new = Client.tls(self, self.tls_port, self.first_cert, self.second_cert)
        self.assertEqual(new.peer_common_name(), "second.chat.test")
        new_nick = new.welcome()
        # The connection made before the reload is still there, and chats.
        old.expect(f"[lobby] --> {new_nick} joined")
        old.send(b"still here\n")
        new.expect(f"[lobby] <{old_nick}> still here")
        plain.expect(
            f"[lobby] --> {new_nick} joined", f"[lobby] <{old_nick}> still here"
        )
        plain.send(b"good\n")
        old.expect(f"[lobby] <{plain_nick}> good")
        self.assertEqual(old.peer_common_name(), "first.chat.test")

        bad: list[tuple[str, list[tuple[Path, bytes]]]] = [
            ("garbage", [(self.cert, b"-----BEGIN CERTIFICATE-----\nnot one\n")]),
            # The first certificate with the second's key.
            ("mismatch", [(self.cert, self.first_cert.read_bytes())]),
        ]
        for what, files in bad:
            replace_files(files)
            since = self.reload()
            line = self.log.wait_for(
                rb".*Could not reload the TLS certificate.*", since
            )
            self.assertIn(b"the old one stays in use", line.group(), what)
            self.assertNotIn(b"Reloaded the TLS", self.log.data[since:], what)
            self.assertIsNone(self.server.process.poll(), what)
            again = Client.tls(self, self.tls_port, self.first_cert, self.second_cert)
            self.assertEqual(again.peer_common_name(), "second.chat.test", what)
            nick = again.welcome()
            plain.expect(f"[lobby] --> {nick} joined")
            again.send(b"after a bad reload\n")
            plain.expect(f"[lobby] <{nick}> after a bad reload")
        self.assertNotIn(b"Traceback", self.log.data)


# IPv6


class IPv6Tests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
                probe.bind(("::1", 0))
        except OSError as e:
            raise unittest.SkipTest(f"no IPv6 loopback here: {e}") from None

    def test_chatOverIPv6Loopback(self) -> None:
        """
        A server on ::1: two clients chat, the log names their IPv6
        addresses, and C{--max-per-ip 2} refuses a third connection from
        ::1 with the documented line.
        """
        server = ServerProcess(
            self,
            "tcp6:0:interface=\\:\\:1",
            options=["--max-per-ip", "2", "--database", ":memory:"],
        )
        log = server_log(server)
        (address,) = server.addresses
        match = re.fullmatch(
            r"IPv6Address\(type='TCP', host='::1', port=(\d+), "
            r"flowInfo=0, scopeID=0\)",
            address,
        )
        assert match is not None, address
        port = int(match.group(1))

        first = Client.tcp(self, port, host="::1")
        first_nick = first.welcome()
        second = Client.tcp(self, port, host="::1")
        second_nick = second.welcome()
        first.expect(f"[lobby] --> {second_nick} joined")
        first.send(b"hello over v6\n")
        second.expect(f"[lobby] <{first_nick}> hello over v6")
        second.send(b"and back\n")
        first.expect(f"[lobby] <{second_nick}> and back")

        for client, nick in ((first, first_nick), (second, second_nick)):
            log.wait_for(
                re.escape(
                    f"IPv6Address(type='TCP', host='::1', port={client.local_port}, "
                    f"flowInfo=0, scopeID=0) connected as {nick}".encode()
                )
            )

        third = Client.tcp(self, port, host="::1")
        self.assertEqual(third.read_to_end(), too_many(2))
        log.wait_for(
            re.escape(
                f"IPv6Address(type='TCP', host='::1', port={third.local_port}, "
                "flowInfo=0, scopeID=0) refused: max per ip".encode()
            )
        )
        # The refused connection disturbed nobody.
        first.send(b"/who\n")
        first.expect(f"*** lobby (2 members): @{first_nick}, {second_nick}")


# Metrics


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """
    GET /metrics, parsed: the value of each sample by name and labels.
    """
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode("utf-8")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    name: str,
    **labels: str,
) -> float:
    key = (name, tuple(sorted(labels.items())))
    if key not in samples:
        raise unittest.FailTest(f"no sample {key}; have {sorted(samples)}")
    return samples[key]


class MetricsTests(unittest.SynchronousTestCase):
    def test_countersFollowAConversation(self) -> None:
        """
        Scraped before and after a scripted conversation, every chat metric
        moves by what the conversation did: clients and rooms, lines and
        bytes each way, deliveries, lines held by flood control, a refused
        connection, fan-outs and history writes. The chat port does not
        serve metrics, and the server listens on the two ports only.
        """
        server = ServerProcess(
            self,
            options=[
                "--metrics",
                "tcp:0:interface=127.0.0.1",
                "--max-per-ip",
                "3",
                "--flood-burst",
                "3",
                "--flood-rate",
                "20",
            ],
        )
        log = server_log(server)
        match = log.wait_for(
            rb"Metrics server listening on IPv4Address\(type='TCP', "
            rb"host='127\.0\.0\.1', port=(\d+)\)"
        )
        metrics_port = int(match.group(1))
        chat_port = server.tcp_port
        assert chat_port is not None
        assert_listening(self, server, {chat_port, metrics_port})

        before = scrape(metrics_port)
        self.assertEqual(value(before, "chat_clients"), 0)
        self.assertEqual(value(before, "chat_rooms"), 0)
        self.assertEqual(value(before, "chat_history_write_seconds_count"), 0)

        a = Client.tcp(self, chat_port)
        self.assertEqual(a.welcome(), "guest1")
        b = Client.tcp(self, chat_port)
        self.assertEqual(b.welcome(), "guest2")
        a.expect("[lobby] --> guest2 joined")
        flooder = Client.tcp(self, chat_port)
        self.assertEqual(flooder.welcome(), "guest3")
        a.expect("[lobby] --> guest3 joined")
        b.expect("[lobby] --> guest3 joined")
        # A fourth connection from 127.0.0.1 is one too many.
        refused = Client.tcp(self, chat_port)
        self.assertEqual(refused.read_to_end(), too_many(3))

        a.send(b"hello from a\n")
        b.expect("[lobby] <guest1> hello from a")
        flooder.expect("[lobby] <guest1> hello from a")
        b.send(b"/join side\n")
        b.expect("*** Now talking in side (1 member).")

        # Six lines at once: three pass (the burst), three are held and
        # come out at 20 a second.
        started = time.monotonic()
        flooder.send(b"".join(b"flood %d\n" % n for n in range(1, 7)))
        for client in (a, b):
            client.expect(*(f"[lobby] <guest3> flood {n}" for n in range(1, 7)))
        self.assertGreaterEqual(time.monotonic() - started, 0.12)
        flooder.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(flooder.read_to_end(), b"*** Goodbye.\r\n")
        for client in (a, b):
            client.expect("[lobby] <-- guest3 quit (connection closed)")

        # History is written by group commit, every 50 ms.
        deadline = time.monotonic() + TIMEOUT
        while True:
            after = scrape(metrics_port)
            if value(after, "chat_history_write_seconds_count") > 0:
                break
            if time.monotonic() > deadline:
                raise unittest.FailTest("no history write counted")

        def moved(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        clients = (a, b, flooder, refused)
        # Each received line: welcomes 3, joins 3 (B's and the flooder's),
        # hello 2, B's reply 1, flood 12, goodbye 1, quit 2.
        self.assertEqual(
            {
                "chat_clients": value(after, "chat_clients"),
                "chat_rooms": value(after, "chat_rooms"),
                "chat_lines_received_total": moved("chat_lines_received_total"),
                "chat_deliveries_total": moved("chat_deliveries_total"),
                "chat_received_bytes_total": moved("chat_received_bytes_total"),
                "chat_sent_bytes_total": moved("chat_sent_bytes_total"),
                "chat_flood_delayed_lines_total": moved(
                    "chat_flood_delayed_lines_total"
                ),
                "chat_sendq_disconnects_total": moved("chat_sendq_disconnects_total"),
                "max_per_ip": moved(
                    "chat_refused_connections_total", reason="max_per_ip"
                ),
                "max_clients": moved(
                    "chat_refused_connections_total", reason="max_clients"
                ),
                # Room lines: 3 joins of the lobby, 1 of side, hello, 6
                # flood lines, 1 quit.
                "chat_fanout_seconds_count": moved("chat_fanout_seconds_count"),
            },
            {
                "chat_clients": 2,
                "chat_rooms": 2,
                "chat_lines_received_total": 1 + 1 + 6,
                "chat_deliveries_total": 24,
                "chat_received_bytes_total": sum(c.sent for c in clients),
                "chat_sent_bytes_total": sum(c.received for c in clients),
                "chat_flood_delayed_lines_total": 3,
                "chat_sendq_disconnects_total": 0,
                "max_per_ip": 1,
                "max_clients": 0,
                "chat_fanout_seconds_count": 12,
            },
        )
        # Each commit holds at least one of the seven lines said.
        self.assertLessEqual(moved("chat_history_write_seconds_count"), 7)
        self.assertGreater(moved("chat_history_write_seconds_sum"), 0)
        self.assertEqual(
            value(after, "chat_fanout_seconds_bucket", le="+Inf"),
            value(after, "chat_fanout_seconds_count"),
        )

        # The chat port speaks chat, even to HTTP.
        browser = Client.tcp(self, chat_port)
        browser.send(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        self.assertEqual(browser.welcome(), "guest4")
        a.expect(
            "[lobby] --> guest4 joined",
            "[lobby] <guest4> GET /metrics HTTP/1.0",
            "[lobby] <guest4> Host: 127.0.0.1",
        )
        browser.send(b"/quit\n")
        answer = browser.read_to_end()
        # The lobby's history, then goodbye: chat lines, and nothing else.
        lines = answer.split(b"\r\n")
        self.assertEqual(lines[0], b"*** Last 7 line(s) of lobby:", answer)
        self.assertEqual(
            lines[-3:], [b"*** End of history of lobby.", b"*** Goodbye.", b""]
        )
        self.assertNotIn(b"HTTP/1.", answer)
        self.assertNotIn(b"chat_", answer)


# Stopping


class StopTests(unittest.SynchronousTestCase):
    def test_sigtermTellsEveryoneAndSavesHistory(self) -> None:
        """
        SIGTERM with three clients, one in another room and one that has
        just said twenty lines: each gets the shutdown line as its last
        line and then end of file, every line said is in the database, and
        the server exits with status 0.
        """
        database = make_temp_dir(self) / "chat.sqlite3"
        server = ServerProcess(
            self, options=["--database", str(database), "--flood-rate", "0"]
        )
        log = server_log(server)
        port = server.tcp_port
        assert port is not None
        talker = Client.tcp(self, port)
        talker_nick = talker.welcome()
        listener = Client.tcp(self, port)
        listener_nick = listener.welcome()
        elsewhere = Client.tcp(self, port)
        elsewhere_nick = elsewhere.welcome()
        talker.expect(
            f"[lobby] --> {listener_nick} joined",
            f"[lobby] --> {elsewhere_nick} joined",
        )
        listener.expect(f"[lobby] --> {elsewhere_nick} joined")
        elsewhere.send(b"/join side\n/part lobby\n")
        elsewhere.expect(
            "*** Now talking in side (1 member).",
            "*** You left lobby; now talking in side.",
        )
        talker.expect(f"[lobby] <-- {elsewhere_nick} left")
        listener.expect(f"[lobby] <-- {elsewhere_nick} left")

        said = [f"last words {n}" for n in range(20)]
        talker.send("".join(f"{line}\n" for line in said).encode())
        listener.expect(*(f"[lobby] <{talker_nick}> {line}" for line in said))
        since = log.mark()
        server.process.send_signal(signal.SIGTERM)

        for client in (talker, listener, elsewhere):
            self.assertEqual(client.read_to_end(), GOODBYE)
        wait_for_exit(self, server.process, log, 5 + TIMEOUT)
        self.assertEqual(server.process.returncode, 0, log.text())
        rest = log.data[since:]
        self.assertIn(b"Received SIGTERM; shutting down", rest)
        self.assertIn(b"Server Shut Down.", rest)
        self.assertNotIn(b"aborting", rest)

        db = sqlite3.connect(str(database))
        try:
            rows = db.execute(
                "SELECT chunk, text FROM messages WHERE room = 'lobby'"
            ).fetchall()
        finally:
            db.close()
        self.assertEqual([text for _, text in sorted(rows, key=lambda r: r[0])], said)

    def test_sigint(self) -> None:
        """
        SIGINT stops the server the same way, with status 0.
        """
        server = ServerProcess(self, options=["--database", ":memory:"])
        log = server_log(server)
        assert server.tcp_port is not None
        first = Client.tcp(self, server.tcp_port)
        first.welcome()
        second = Client.tcp(self, server.tcp_port)
        second_nick = second.welcome()
        first.expect(f"[lobby] --> {second_nick} joined")
        clients = [first, second]
        server.process.send_signal(signal.SIGINT)
        for client in clients:
            self.assertEqual(client.read_to_end(), GOODBYE)
        wait_for_exit(self, server.process, log, 5 + TIMEOUT)
        self.assertEqual(server.process.returncode, 0, log.text())
        self.assertIn(b"Received SIGINT; shutting down", log.data)

    def test_graceBoundsAStalledReader(self) -> None:
        """
        A client that does not read, with megabytes waiting for it, cannot
        hold the server up: it is aborted after C{--shutdown-grace} and the
        server exits 0. Meanwhile the listener is closed: no new connection
        is accepted once the server is stopping, while a reading client
        still gets its last line.
        """
        server = ServerProcess(
            self,
            options=[
                "--shutdown-grace",
                "1",
                "--flood-rate",
                "0",
                "--sendq",
                str(64 * 1024 * 1024),
                "--database",
                ":memory:",
                "--no-history",
            ],
        )
        log = server_log(server)
        port = server.tcp_port
        assert port is not None
        stalled = Client.tcp(self, port, rcvbuf=4096)
        stalled.welcome()
        talker = Client.tcp(self, port)
        talker.welcome()
        # 8 MiB for the stalled reader: more than any socket buffer holds.
        line = b"x" * 4000 + b"\n"
        talker.send(line * 2048)
        talker.send(b"/rooms\n")
        talker.expect("*** 1 room(s):", "***   lobby (2)")

        since = log.mark()
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        log.wait_for(
            rb"Shutting down: waiting up to 1\.0 seconds for 2 connection\(s\)", since
        )
        # The listener closed before the chat began to close.
        refused_connection(self, port)
        self.assertEqual(talker.read_to_end(), GOODBYE)
        wait_for_exit(self, server.process, log, TIMEOUT)
        elapsed = time.monotonic() - started
        self.assertEqual(server.process.returncode, 0, log.text())
        self.assertGreaterEqual(elapsed, 1.0)
        self.assertLess(elapsed, 1.0 + 4)
        log.wait_for(
            rb"Shutting down: aborting 1 connection\(s\) that did not take their "
            rb"last lines within 1\.0 seconds",
            since,
        )
        # The stalled reader never got its last line: it was cut off.
        try:
            rest = stalled.read_to_end()
        except ConnectionResetError:
            rest = b""
        self.assertFalse(rest.endswith(GOODBYE))


class StartupSignalTests(unittest.SynchronousTestCase):
    def test_sighupAsSoonAsListening(self) -> None:
        """
        A script may signal the server as soon as it has said it listens (a
        certificate renewal hook, say): SIGHUP then reloads; it must not
        kill the server.
        """
        server = ServerProcess(self, options=["--database", ":memory:"])
        log = server_log(server)
        server.process.send_signal(signal.SIGHUP)
        try:
            log.wait_for(rb"Received SIGHUP; reloading")
        except AssertionError as e:
            raise unittest.FailTest(
                f"exit status {server.process.poll()} after SIGHUP: {e}"
            ) from None
        assert server.tcp_port is not None
        Client.tcp(self, server.tcp_port).welcome()
        self.assertIsNone(server.process.poll())


# JSON logs


def parse_json_lines(testcase: unittest.SynchronousTestCase, data: bytes) -> list[Any]:
    """
    Every line of C{data} as a JSON object with the four keys every event
    has.
    """
    events = []
    for line in data.decode("utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            raise unittest.FailTest(f"not a JSON line: {line!r}") from None
        testcase.assertIsInstance(event, dict, line)
        for key in ("time", "level", "namespace", "text"):
            testcase.assertIn(key, event, line)
        datetime.datetime.fromisoformat(event["time"])
        testcase.assertIn(
            event["level"], ("debug", "info", "warn", "error", "critical")
        )
        events.append(event)
    return events


def find_events(events: list[Any], **fields: Any) -> list[Any]:
    """
    The events that have each of C{fields} with the value given.
    """
    return [e for e in events if all(e.get(k) == v for k, v in fields.items())]


def one(events: list[Any], **fields: Any) -> Any:
    """
    The one event that has C{fields}.
    """
    found = find_events(events, **fields)
    if len(found) != 1:
        raise unittest.FailTest(f"{len(found)} events with {fields}: {found}")
    return found[0]


class JSONLogTests(unittest.SynchronousTestCase):
    def conversation(self, port: int, log: Log) -> tuple[int, int]:
        """
        Connect, change nickname, join and part a room, say something and
        quit with a message; wait for the quit to be logged. Returns the
        local ports of the two clients.
        """
        alice = Client.tcp(self, port)
        alice.welcome()
        bob = Client.tcp(self, port)
        bob.welcome()
        alice.expect("[lobby] --> guest2 joined")
        alice.send(b"/nick jsonalice\n")
        alice.expect("*** You are now known as jsonalice.")
        alice.send(b"/join hideout\n")
        alice.expect("*** Now talking in hideout (1 member).")
        alice.send(b"/part hideout\n")
        alice.expect("*** You left hideout; now talking in lobby.")
        alice.send(b"zebra quartz 7781 is the secret\n")
        bob.expect(
            "[lobby] --- guest1 is now known as jsonalice",
            "[lobby] <jsonalice> zebra quartz 7781 is the secret",
        )
        alice.send(b"/quit farewell wombat 4412\n")
        self.assertEqual(alice.read_to_end(), b"*** Goodbye.\r\n")
        bob.expect("[lobby] <-- jsonalice quit (farewell wombat 4412)")
        log.wait_for(rb"jsonalice\) disconnected")
        return alice.local_port, bob.local_port

    def check(self, process: subprocess.Popen[bytes], log: Log, port: int) -> None:
        alice_port, bob_port = self.conversation(port, log)
        process.send_signal(signal.SIGTERM)
        wait_for_exit(self, process, log, TIMEOUT)
        self.assertEqual(process.returncode, 0, log.text())
        # What was said, the quit message included, is nowhere in the log.
        self.assertNotIn(b"zebra", log.data)
        self.assertNotIn(b"wombat", log.data)

        events = parse_json_lines(self, log.data)
        alice_peer = f"127.0.0.1:{alice_port}"
        bob_peer = f"127.0.0.1:{bob_port}"
        connected = one(events, peer=alice_peer, nick="guest1")
        self.assertEqual(
            (connected["namespace"], connected["level"], connected["text"]),
            (
                "chatservice.frontends.stream",
                "info",
                f"{alice_peer} connected as guest1",
            ),
        )
        one(
            events,
            peer=bob_peer,
            nick="guest2",
            text=f"{bob_peer} connected as guest2",
        )
        renamed = one(events, old="guest1", nick="jsonalice")
        self.assertEqual(renamed["text"], "guest1 is now known as jsonalice")
        one(events, nick="jsonalice", room="hideout", text="jsonalice joined hideout")
        one(events, nick="jsonalice", room="hideout", text="jsonalice left hideout")
        gone = one(events, peer=alice_peer, nick="jsonalice")
        self.assertIsInstance(gone["reason"], str)
        self.assertTrue(gone["reason"])
        self.assertEqual(
            gone["text"], f"{alice_peer} (jsonalice) disconnected: {gone['reason']}"
        )
        # Bob was still connected at SIGTERM: he went with the server.
        self.assertEqual(len(find_events(events, peer=bob_peer)), 2)
        one(events, text="Received SIGTERM; shutting down", signal="SIGTERM")

    def start(
        self, twistd: Sequence[str] = (), chat: Sequence[str] = ()
    ) -> tuple[subprocess.Popen[bytes], Log, int]:
        """
        Run C{twistd TWISTD -n chat CHAT} on a port of the kernel's choosing,
        with history in memory; return the process, its log and the chat
        port (read from the JSON listening event).
        """
        process = subprocess.Popen(
            [
                str(TWISTD),
                *twistd,
                "-n",
                "chat",
                "--port",
                "tcp:0:interface=127.0.0.1",
                "--database",
                ":memory:",
                *chat,
            ],
            cwd=make_temp_dir(self),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.addCleanup(stop_process, process)
        log = Log(process)
        match = log.wait_for(rb'.*"text": "Chat server listening on .*')
        event = json.loads(match.group())
        self.assertEqual(event["namespace"], "chatservice.server.service")
        host, port = event["address"].rsplit(":", 1)
        self.assertEqual(host, "127.0.0.1")
        self.assertIn(event["address"], event["text"])
        return process, log, int(port)

    def test_logFormatJSON(self) -> None:
        """
        C{--log-format json}: every line of standard output is a JSON object
        with time, level, namespace and text, and the chat's events carry
        their fields (peer as host:port, nick, room, reason); no chat text.
        """
        self.check(*self.start(chat=["--log-format", "json"]))

    def test_twistdLoggerOption(self) -> None:
        """
        C{twistd --logger chatservice.server.logs.json_observer -n chat} logs the
        same JSON lines.
        """
        self.check(
            *self.start(twistd=["--logger", "chatservice.server.logs.json_observer"])
        )


# The message of the day


MOTD = (
    b"Welcome to \x1b[1;31mthe test server\x1b[0m!\r\n"
    b"\n"
    b"Rules: be nice\x07.\x1b]0;pwned title\x07 Really.\n"
    b"broken \xc3 byte\tand \xe2\x80\xaeoverride\n"
    b"\n"
    b"\n"
)
MOTD_LINES = [
    "*** Message of the day:",
    "*** - Welcome to the test server!",
    "*** -",
    "*** - Rules: be nice. Really.",
    "*** - broken \ufffd byte and override",
]


class MotdTests(unittest.SynchronousTestCase):
    def test_motdAfterWelcomeAndReload(self) -> None:
        """
        The MOTD comes right after the welcome (before the lobby's history),
        cleaned of escape sequences and control characters; SIGHUP re-reads
        a changed file for new clients, and keeps the old one if the file
        cannot be read.
        """
        path = make_temp_dir(self) / "motd.txt"
        path.write_bytes(MOTD)
        server = ServerProcess(self, options=["--motd", str(path)])
        log = server_log(server)
        port = server.tcp_port
        assert port is not None

        first = Client.tcp(self, port)
        first.welcome()
        first.expect(*MOTD_LINES)
        first.send(b"/rooms\n")
        first.expect("*** 1 room(s):", "***   lobby (1)")
        # Something for the lobby's history.
        first.send(b"before the reload\n/rooms\n")
        first.expect("*** 1 room(s):", "***   lobby (1)")

        replace_files([(path, b"Maintenance at 18:00 UTC.\n")])
        since = log.mark()
        server.process.send_signal(signal.SIGHUP)
        log.wait_for(rb"Reloaded the MOTD from " + re.escape(str(path).encode()), since)
        second = Client.tcp(self, port)
        second.welcome()
        second.expect(
            "*** Message of the day:",
            "*** - Maintenance at 18:00 UTC.",
            "*** Last 1 line(s) of lobby:",
        )
        self.assertRegex(
            second.read_line(),
            rb"^\[lobby\] \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\) "
            rb"<guest1> before the reload\r\n$",
        )
        second.expect("*** End of history of lobby.")
        second.send(b"/rooms\n")
        second.expect("*** 1 room(s):", "***   lobby (2)")

        path.unlink()
        since = log.mark()
        server.process.send_signal(signal.SIGHUP)
        line = log.wait_for(rb".*Could not reload the MOTD.*", since)
        self.assertIn(str(path).encode(), line.group())
        third = Client.tcp(self, port)
        third.welcome()
        third.expect("*** Message of the day:", "*** - Maintenance at 18:00 UTC.")
        self.assertNotIn(b"Traceback", log.data)

    def test_missingFile(self) -> None:
        """
        A MOTD file that cannot be read stops twistd at once, non-zero,
        with a line that names --motd and the file.
        """
        path = make_temp_dir(self) / "no-such-motd.txt"
        result = subprocess.run(
            [
                str(TWISTD),
                "-n",
                "chat",
                "--port",
                "tcp:0:interface=127.0.0.1",
                "--database",
                ":memory:",
                "--motd",
                str(path),
            ],
            cwd=make_temp_dir(self),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
        )
        output = (result.stdout + result.stderr).decode("utf-8", "replace")
        self.assertNotEqual(result.returncode, 0, output)
        self.assertNotIn("Traceback", output)
        self.assertNotIn("listening", output)
        errors = [line for line in output.splitlines() if "--motd:" in line]
        self.assertEqual(len(errors), 1, output)
        self.assertIn(str(path), errors[0])
        self.assertIn("No such file or directory", errors[0])
        self.assertEqual(output.strip().splitlines()[-1], errors[0])
