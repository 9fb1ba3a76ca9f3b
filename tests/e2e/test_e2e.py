"""
The installed server and client, used the way a user would: C{twistd -n chat}
as a subprocess, reached with raw sockets (like nc and telnet) and with the
C{chat-client} command.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

from twisted.trial import unittest

from tests.support.helpers import (
    CHAT_CLIENT,
    TIMEOUT,
    ServerProcess,
    SocketClient,
    make_temp_dir,
    read_until,
    stop_process,
)

WELCOME = re.compile(
    r"^\*\*\* Welcome to chatservice, guest\d+! You are in lobby\. "
    r"Type /help for commands\.$",
    re.MULTILINE,
)


def run_client(
    *args: str, input: bytes, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """
    Run a client command to completion with C{input} piped in.
    """
    return subprocess.run(args, input=input, capture_output=True, cwd=cwd, timeout=30)


def wait_for_exit(process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """
    Wait for C{process} to exit, without closing its standard input, and
    return the rest of its output and its error output.
    """
    try:
        process.wait(timeout=TIMEOUT * 2)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{process.args} did not exit") from None
    assert process.stdout is not None and process.stderr is not None
    return process.stdout.read(), process.stderr.read()


class RawSocketTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.server = ServerProcess(self)
        assert self.server.tcp_port is not None
        self.port = self.server.tcp_port

    def test_listening_line(self) -> None:
        self.assertTrue(0 < self.port < 65536)
        self.assertEqual(
            self.server.addresses,
            [f"IPv4Address(type='TCP', host='127.0.0.1', port={self.port})"],
        )

    def test_nc_style_bare_newline(self) -> None:
        sender = SocketClient(self, self.port)
        sender_nick = sender.welcome()
        receiver = SocketClient(self, self.port)
        receiver_nick = receiver.welcome()
        self.assertNotEqual(sender_nick, receiver_nick)
        self.assertEqual(
            sender.read_line(), f"[lobby] --> {receiver_nick} joined\r\n".encode()
        )
        sender.send(b"hello\n")
        self.assertEqual(
            receiver.read_line(), f"[lobby] <{sender_nick}> hello\r\n".encode()
        )

    def test_telnet_style_crlf(self) -> None:
        sender = SocketClient(self, self.port)
        sender_nick = sender.welcome()
        receiver = SocketClient(self, self.port)
        receiver.welcome()
        sender.send(b"hi there\r\n")
        self.assertEqual(
            receiver.read_line(), f"[lobby] <{sender_nick}> hi there\r\n".encode()
        )
        # Both styles in one go, and a command.
        receiver.send(b"/nick tel\r\nfirst\nsecond\r\n")
        self.assertEqual(receiver.read_line(), b"*** You are now known as tel.\r\n")
        sender.read_until(lambda line: line == b"[lobby] <tel> first\r\n")
        self.assertEqual(sender.read_line(), b"[lobby] <tel> second\r\n")

    def test_server_closes_after_half_close(self) -> None:
        """
        nc -N: the input ends with a half-close; the replies come, and then
        the server closes.
        """
        client = SocketClient(self, self.port)
        client.welcome()
        client.send(b"/nick erin\n/who\n")
        client.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(
            client.read_to_end(),
            b"*** You are now known as erin.\r\n"
            b"*** lobby (1 member): @erin\r\n"
            b"*** Goodbye.\r\n",
        )


class ChatClientTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.server = ServerProcess(self)
        assert self.server.tcp_port is not None
        self.port = self.server.tcp_port
        self.cwd = make_temp_dir(self)

    def run_client(
        self, *args: str, input: bytes
    ) -> subprocess.CompletedProcess[bytes]:
        return run_client(*args, input=input, cwd=self.cwd)

    def check_piped_session(self, *command: str) -> None:
        """
        Pipe two lines into C{command}, a chat client, and check what it
        prints and what a raw client in the lobby sees.
        """
        watcher = SocketClient(self, self.port)
        watcher.welcome()
        result = self.run_client(*command, input=b"/nick dave\nhello\n")
        self.assertEqual(result.returncode, 0, result)
        self.assertEqual(result.stderr, b"")
        out = result.stdout.decode()
        self.assertNotIn("\r", out)
        lines = out.splitlines()
        self.assertEqual(len(lines), 3, out)
        self.assertRegex(lines[0], WELCOME)
        self.assertEqual(lines[1:], ["*** You are now known as dave.", "*** Goodbye."])
        self.assertTrue(out.endswith("\n"))

        guest = re.search(r"guest\d+", lines[0])
        assert guest is not None
        self.assertEqual(
            [watcher.read_line() for _ in range(4)],
            [
                f"[lobby] --> {guest.group()} joined\r\n".encode(),
                f"[lobby] --- {guest.group()} is now known as dave\r\n".encode(),
                b"[lobby] <dave> hello\r\n",
                b"[lobby] <-- dave quit (connection closed)\r\n",
            ],
        )

    def test_piped_input(self) -> None:
        self.check_piped_session(str(CHAT_CLIENT), "127.0.0.1", str(self.port))

    def test_python_m(self) -> None:
        self.check_piped_session(
            sys.executable, "-m", "chatservice.client", "127.0.0.1", str(self.port)
        )

    def test_connect_option(self) -> None:
        self.check_piped_session(
            str(CHAT_CLIENT), "--connect", f"tcp:host=127.0.0.1:port={self.port}"
        )

    def interactive_client(self) -> tuple[subprocess.Popen[bytes], bytes]:
        """
        A chat-client whose input stays open, once it has been welcomed;
        with what it printed up to and including the welcome.
        """
        client = subprocess.Popen(
            [str(CHAT_CLIENT), "127.0.0.1", str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.cwd,
        )
        self.addCleanup(stop_process, client)
        assert client.stdout is not None
        _, early = read_until(client.stdout, re.compile(rb"^\*\*\* Welcome"))
        return client, early

    def test_quit_command(self) -> None:
        """
        /quit ends the session with status 0 even though input goes on.
        """
        client, early = self.interactive_client()
        assert client.stdin is not None
        client.stdin.write(b"/quit\n")
        client.stdin.flush()
        # Input stays open: it is /quit that ends the session.
        out, err = wait_for_exit(client)
        self.assertEqual((client.returncode, err), (0, b""), early + out)
        self.assertEqual((early + out).splitlines()[-1], b"*** Goodbye.")

    def test_server_goes_away(self) -> None:
        """
        The server stopping under a client whose input is still open is an
        error: the client says so and exits 1.
        """
        client, _ = self.interactive_client()

        self.assertIn(b"Server Shut Down.", self.server.stop())
        # Input is still open: only the server going away can end the client.
        out, err = wait_for_exit(client)
        self.assertEqual(client.returncode, 1, (out, err))
        self.assertRegex(
            err.decode(),
            r"^chat-client: (the server closed the connection|connection lost: .+)\n$",
        )

    def test_output_closed(self) -> None:
        """
        When nobody reads the client's output any more (C{chat-client |
        head -1}), the client leaves the chat and exits, even though its
        input is still open.
        """
        watcher = SocketClient(self, self.port)
        watcher.welcome()
        client, _ = self.interactive_client()
        assert client.stdout is not None
        guest = watcher.read_line()
        self.assertRegex(guest, rb"^\[lobby\] --> guest2 joined\r\n$")
        client.stdout.close()
        try:
            client.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("chat-client hangs after its output was closed")
        self.assertEqual((client.returncode, client.stderr.read()), (0, b""))
        self.assertRegex(
            watcher.read_line(), rb"^\[lobby\] <-- guest2 quit \(.*\)\r\n$"
        )


class ClientWithoutServerTests(unittest.SynchronousTestCase):
    def test_nothing_listening(self) -> None:
        # A bound socket that does not listen: connecting is refused.
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))
        port = blocker.getsockname()[1]
        result = run_client(str(CHAT_CLIENT), "127.0.0.1", str(port), input=b"")
        self.assertEqual(result.returncode, 1, result)
        self.assertEqual(result.stdout, b"")
        self.assertRegex(
            result.stderr.decode(),
            rf"^chat-client: cannot connect to tcp:host=127\.0\.0\.1:port={port}: "
            ".*refused",
        )

    def test_bad_endpoint(self) -> None:
        """
        A --connect that is not a valid endpoint is reported in one line,
        not with a traceback.
        """
        for endpoint in ("bogus:1", "tcp:host=127.0.0.1"):
            result = run_client(str(CHAT_CLIENT), "--connect", endpoint, input=b"")
            self.assertIn(result.returncode, (1, 2), result)
            self.assertEqual(result.stdout, b"")
            self.assertTrue(result.stderr.startswith(b"chat-client: "), result)
            self.assertNotIn(b"Traceback", result.stderr)

    def test_bad_arguments(self) -> None:
        result = run_client(str(CHAT_CLIENT), "127.0.0.1", "http", input=b"")
        self.assertEqual(result.returncode, 2, result)
        self.assertEqual(result.stdout, b"")
        self.assertIn(b"PORT must be a number, not 'http'", result.stderr)


class ListenerTests(unittest.SynchronousTestCase):
    def test_unix_socket(self) -> None:
        path = make_temp_dir(self) / "chat.sock"
        server = ServerProcess(self, f"unix:{path}")
        self.assertEqual(server.addresses, [f"UNIXAddress({str(path)!r})"])
        first = SocketClient(self, path=str(path))
        first_nick = first.welcome()
        second = SocketClient(self, path=str(path))
        second.welcome()
        first.send(b"over unix\n")
        self.assertEqual(
            second.read_line(), f"[lobby] <{first_nick}> over unix\r\n".encode()
        )

    def test_tcp_and_unix_share_rooms(self) -> None:
        path = make_temp_dir(self) / "chat.sock"
        server = ServerProcess(self, "tcp:0:interface=127.0.0.1", f"unix:{path}")
        self.assertEqual(len(server.addresses), 2, server.output)
        assert server.tcp_port is not None
        tcp = SocketClient(self, server.tcp_port)
        tcp.welcome()
        unix = SocketClient(self, path=str(path))
        unix.welcome()
        self.assertEqual(tcp.read_line(), b"[lobby] --> guest2 joined\r\n")

        tcp.send(b"/nick tina\n/join side\nvia tcp\n")
        self.assertEqual(
            unix.read_line(), b"[lobby] --- guest1 is now known as tina\r\n"
        )
        unix.send(b"/nick uma\n/join side\nvia unix\n")
        unix.read_until(lambda line: line.startswith(b"*** Now talking in side"))
        # What tina said before uma came in is replayed to uma as history.
        self.assertEqual(unix.read_line(), b"*** Last 1 line(s) of side:\r\n")
        replayed = unix.read_line()
        self.assertRegex(
            replayed,
            rb"^\[side\] \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\) <tina> via tcp\r\n$",
        )
        self.assertEqual(unix.read_line(), b"*** End of history of side.\r\n")
        tcp.read_until(lambda line: line == b"[side] --> uma joined\r\n")
        self.assertEqual(tcp.read_line(), b"[side] <uma> via unix\r\n")
        tcp.send(b"back via tcp\n")
        self.assertEqual(unix.read_line(), b"[side] <tina> back via tcp\r\n")

        # chat-client over the UNIX socket, in the same rooms.
        result = run_client(
            str(CHAT_CLIENT),
            "--connect",
            f"unix:path={path}",
            input=b"/join side\nfrom chat-client\n",
            cwd=path.parent,
        )
        self.assertEqual(result.returncode, 0, result)
        self.assertRegex(result.stdout.decode(), WELCOME)
        tcp.read_until(lambda line: line == b"[side] <guest3> from chat-client\r\n")
        unix.read_until(lambda line: line == b"[side] <guest3> from chat-client\r\n")
