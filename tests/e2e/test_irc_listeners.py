"""
IRC over TLS and over IPv6, through the installed C{twistd -n chat}: one
server with both IRC listeners, reached over real loopback sockets.
"""

from __future__ import annotations

import re
import socket
import ssl

from twisted.trial.unittest import SynchronousTestCase

from tests.support.certs import make_certificate
from tests.support.helpers import (
    TIMEOUT,
    ServerProcess,
    SocketClient,
    make_temp_dir,
)

_IRC_LISTENING = re.compile(rb"IRC server listening on (IPv[46]Address\(.*\))")
_PORT = re.compile(r"port=(\d+)")


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def register(client: SocketClient, nick: str) -> bytes:
    """Register as C{nick}; returns the welcome line."""
    client.send(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
    return client.read_until(lambda line: b" 001 " in line)


class IRCListenerTests(SynchronousTestCase):
    def test_tlsAndIPv6(self) -> None:
        """
        C{--irc-port ssl:...} serves IRC over TLS with the given certificate
        and C{--irc-port tcp6:...} over IPv6, in the same rooms.
        """
        if not ipv6_loopback():
            self.skipTest("this machine has no IPv6 loopback")
        key, cert = make_certificate(make_temp_dir(self))
        server = ServerProcess(
            self,
            options=[
                "--database",
                ":memory:",
                "--irc-server-name",
                "irc.test",
                "--irc-port",
                f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
                "--irc-port",
                r"tcp6:0:interface=\:\:1",
            ],
        )
        addresses = [m.group(1).decode() for m in server.logged(_IRC_LISTENING, 2)]
        (tls_port,) = [
            int(p) for a in addresses if "IPv4" in a for p in _PORT.findall(a)
        ]
        (v6_port,) = [
            int(p) for a in addresses if "IPv6" in a for p in _PORT.findall(a)
        ]

        context = ssl.create_default_context(cafile=str(cert))
        raw = socket.create_connection(("127.0.0.1", tls_port), timeout=TIMEOUT)
        tls = SocketClient(
            self, sock=context.wrap_socket(raw, server_hostname="127.0.0.1")
        )
        self.assertEqual(
            register(tls, "alice"),
            b":irc.test 001 alice :Welcome to the chatservice IRC Network "
            b"alice!alice@chatservice\r\n",
        )
        v6 = SocketClient(
            self, sock=socket.create_connection(("::1", v6_port), timeout=TIMEOUT)
        )
        register(v6, "bob")
        for client, nick in ((tls, "alice"), (v6, "bob")):
            client.send(b"JOIN #both\r\n")
            end = f" 366 {nick} #both ".encode()
            client.read_until(lambda line, end=end: end in line)
        tls.send(b"PRIVMSG #both :over TLS\r\n")
        self.assertEqual(
            v6.read_until(lambda line: b"PRIVMSG" in line),
            b":alice!alice@chatservice PRIVMSG #both :over TLS\r\n",
        )
        v6.send(b"PRIVMSG #both :over IPv6\r\n")
        self.assertEqual(
            tls.read_until(lambda line: b"PRIVMSG" in line),
            b":bob!bob@chatservice PRIVMSG #both :over IPv6\r\n",
        )
