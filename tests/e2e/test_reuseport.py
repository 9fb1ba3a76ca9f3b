"""
Two installed C{twistd chat} processes sharing one port through
C{reuseport:}, as an operator runs several on one host.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from tests.support.helpers import (
    TIMEOUT,
    ServerProcess,
    SocketClient,
    make_temp_dir,
)

# Connections tried before two processes sharing a port count as not
# sharing it: the kernel hashes each to one of them, so all of them
# reaching one has a chance of one in 2**63.
SPREAD_ATTEMPTS = 64

_MOTD_LINE = re.compile(rb"\*\*\* - (node \w+)\r\n")


class ReusePortTests(SynchronousTestCase):
    def server(self, name: str, port: int) -> ServerProcess:
        """
        A server on C{reuseport:PORT} whose message of the day names it, so
        that a client can tell which process took its connection.
        """
        motd = make_temp_dir(self) / "motd"
        motd.write_text(f"node {name}\n")
        return ServerProcess(
            self,
            f"reuseport:{port}:interface=127.0.0.1",
            options=["--database", ":memory:", "--motd", str(motd)],
        )

    def whom(self, port: int) -> bytes:
        """
        The name of the process that takes a new connection to C{port}.
        """
        client = SocketClient(self, port)
        client.welcome()
        line = client.read_until(lambda line: _MOTD_LINE.match(line) is not None)
        match = _MOTD_LINE.match(line)
        assert match is not None
        client.sock.close()
        return match.group(1)

    def test_shareAndSurvive(self) -> None:
        """
        Both processes accept connections on the one port; once one is
        killed, every new connection reaches the other.
        """
        a = self.server("a", 0)
        port = a.tcp_port
        assert port is not None
        b = self.server("b", port)
        self.assertEqual(b.tcp_port, port)

        seen: set[bytes] = set()
        for _ in range(SPREAD_ATTEMPTS):
            seen.add(self.whom(port))
            if len(seen) == 2:
                break
        self.assertEqual(seen, {b"node a", b"node b"})

        os.kill(a.process.pid, signal.SIGKILL)
        try:
            status = a.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("the killed server did not exit")
        self.assertEqual(status, -signal.SIGKILL)
        self.assertEqual([self.whom(port) for _ in range(10)], [b"node b"] * 10)
        self.assertIsNone(b.process.poll())
