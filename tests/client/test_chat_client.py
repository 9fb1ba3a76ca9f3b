"""
The installed C{chat-client}, as a subprocess, against the installed
C{twistd chat}: over TLS, across a server restart, interrupted, and at a
pseudo-terminal.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import termios
import time
from pathlib import Path

from twisted.trial import unittest

import chatservice
from chatservice.client.tls import INSECURE_WARNING
from tests.client.helpers import CertificateFiles
from tests.support.helpers import (
    CHAT_CLIENT,
    TIMEOUT,
    ServerProcess,
    SocketClient,
    make_temp_dir,
    read_until,
    stop_process,
)


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


class VersionTests(unittest.SynchronousTestCase):
    def test_version(self) -> None:
        """
        The installed script, and C{python -m chatservice.client}, print
        chatservice's version and exit 0.
        """
        expected = f"chat-client (chatservice) {chatservice.__version__}\n".encode()
        for command in (
            [str(CHAT_CLIENT)],
            [sys.executable, "-m", "chatservice.client"],
        ):
            result = subprocess.run(
                [*command, "--version"],
                capture_output=True,
                cwd=make_temp_dir(self),
                timeout=TIMEOUT,
            )
            self.assertEqual(
                (result.returncode, result.stdout, result.stderr),
                (0, expected, b""),
                command,
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

    def test_plain_port(self) -> None:
        """
        TLS to a port that does not speak it: the client says, in one line
        and without a traceback, what the server answered (that the port
        speaks plain text), with or without --reconnect, whether or not
        the certificate would have been checked; nothing the server said
        in plain text is printed as chat, and it exits 1.
        """
        assert self.server.tcp_port is not None
        port = self.server.tcp_port
        explained = (
            f"chat-client: TLS handshake with 127.0.0.1:{port} failed: the "
            'server answered in plain text: "This port speaks plain text, not '
            'TLS; use the TLS port."'
        )
        warning = f"chat-client: {INSECURE_WARNING}"
        for args, expected in [
            (["--tls", "--insecure"], [warning, explained]),
            (["--tls"], [explained]),
            (["--reconnect", "--tls", "--insecure"], [warning, explained]),
            (["--reconnect", "--tls"], [explained]),
        ]:
            result = run_client(*args, "127.0.0.1", str(port), input=b"", cwd=self.cwd)
            self.assertEqual(result.returncode, 1, args)
            self.assertRegex(
                result.stderr.decode().splitlines()[-1],
                rf"^chat-client: TLS handshake with 127\.0\.0\.1:{port} failed: .+",
            )
            self.assertNotIn(b"Traceback", result.stderr)
            self.assertEqual(result.stderr.decode().splitlines(), expected, args)
            self.assertEqual(result.stdout, b"", args)


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


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
                # As at a terminal: a test run started in the background by
                # a shell without job control inherits SIGINT ignored, and
                # the client (rightly) leaves it so.
                preexec_fn=_default_sigint,
            )
            self.addCleanup(stop_process, process)
            assert process.stdout is not None
            read_until(process.stdout, re.compile(rb"^\*\*\* Welcome"))
            process.send_signal(signal.SIGINT)
            # Input stays open until the client is gone: closing it (as
            # communicate() does at once) could end the client first.
            self.assertEqual(process.wait(timeout=TIMEOUT), 1, extra)
            assert process.stderr is not None
            self.assertEqual(process.stderr.read(), b"", extra)


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
