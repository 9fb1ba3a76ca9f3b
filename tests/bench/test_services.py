"""
Tests for L{chatservice.bench.services}: where C{--redis} points, reading
Redis's figures, and the throwaway Redis and PostgreSQL that C{--nodes}
starts when none is given.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from chatservice.bench import services
from chatservice.bench.cluster import services as shared_services
from chatservice.bench.errors import BenchError
from chatservice.bench.services import (
    RedisProbe,
    redis_figures,
    redis_socket_address,
)


class AddressTests(SynchronousTestCase):
    def test_forms(self) -> None:
        """
        What the nodes take as C{--redis}, endpoint strings and URLs, is
        where the probe connects.
        """
        for given, where in [
            ("unix:path=/run/redis.sock", "/run/redis.sock"),
            ("unix:/run/redis.sock", "/run/redis.sock"),
            ("unix:path=/run/redis.sock:timeout=3", "/run/redis.sock"),
            ("unix:///run/redis.sock", "/run/redis.sock"),
            ("unix:path=/odd\\:name.sock", "/odd:name.sock"),
            ("tcp:host=10.0.0.5:port=6380", ("10.0.0.5", 6380)),
            ("tcp:10.0.0.5:6380", ("10.0.0.5", 6380)),
            ("redis://10.0.0.5:6380", ("10.0.0.5", 6380)),
            ("redis://10.0.0.5", ("10.0.0.5", 6379)),
            ("redis://[::1]:6380/", ("::1", 6380)),
        ]:
            self.assertEqual(redis_socket_address(given), where, given)

    def test_unreadable(self) -> None:
        """An address it cannot read is refused with what it takes."""
        for given in ("ssl:host=x:port=1", "tcp:host=x", "nonsense", "unix:"):
            with self.assertRaises(BenchError, msg=given) as caught:
                redis_socket_address(given)
            self.assertIn("unix:path=PATH", str(caught.exception))


class FakeRedis:
    """Answers one connection's command with C{reply}, in pieces."""

    def __init__(self, testcase: SynchronousTestCase, reply: bytes) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        testcase.addCleanup(self.listener.close)
        self.received = b""
        self.thread = threading.Thread(target=self.serve, args=(reply,))
        self.thread.start()
        testcase.addCleanup(self.thread.join, 5)

    @property
    def where(self) -> tuple[str, int]:
        host, port = self.listener.getsockname()
        return host, port

    def serve(self, reply: bytes) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while not self.received.endswith(b"\r\n") or self.received.count(
                b"\r\n"
            ) < 1 + 2 * int(self.received[1:2] or b"0"):
                self.received += conn.recv(100)
            for at in range(0, len(reply), 7):
                conn.sendall(reply[at : at + 7])


class ProbeTests(SynchronousTestCase):
    def test_info(self) -> None:
        """
        C{INFO all} is sent as RESP, and its bulk reply, however it
        arrives, is read as figures by name; section headers are skipped.
        """
        text = (
            b"# Stats\r\ntotal_commands_processed:12\r\n"
            b"# Commandstats\r\ncmdstat_evalsha:calls=3,usec=9,usec_per_call=3.00\r\n"
        )
        fake = FakeRedis(self, b"$%d\r\n%s\r\n" % (len(text), text))
        info = RedisProbe(fake.where).info()
        self.assertEqual(fake.received, b"*2\r\n$4\r\nINFO\r\n$3\r\nall\r\n")
        self.assertEqual(
            info,
            {
                "total_commands_processed": "12",
                "cmdstat_evalsha": "calls=3,usec=9,usec_per_call=3.00",
            },
        )

    def test_error(self) -> None:
        """An error reply, or no Redis, is a BenchError saying so."""
        fake = FakeRedis(self, b"-NOAUTH Authentication required.\r\n")
        with self.assertRaises(BenchError) as caught:
            RedisProbe(fake.where).command("PING")
        self.assertIn("NOAUTH", str(caught.exception))
        with self.assertRaises(BenchError):
            RedisProbe("/nonexistent/redis.sock").command("PING")

    def test_figures(self) -> None:
        """
        What Redis did between two readings: commands, calls of each
        command that ran (those that did not are left out), CPU seconds.
        """
        before = {
            "total_commands_processed": "100",
            "used_cpu_user": "1.5",
            "used_cpu_sys": "0.5",
            "cmdstat_evalsha": "calls=10,usec=50",
            "cmdstat_ping": "calls=4,usec=1",
        }
        after = {
            "total_commands_processed": "160",
            "used_cpu_user": "2.0",
            "used_cpu_sys": "0.75",
            "cmdstat_evalsha": "calls=30,usec=150",
            "cmdstat_xadd": "calls=20,usec=40",
            "cmdstat_ping": "calls=4,usec=1",
        }
        found = redis_figures(before, after)
        self.assertEqual(found.commands, 60)
        self.assertEqual(found.calls, {"evalsha": 20, "xadd": 20})
        self.assertAlmostEqual(found.cpu_seconds, 0.75)


class ThrowawayTests(SynchronousTestCase):
    def setUp(self) -> None:
        if shutil.which("redis-server") is None:
            raise self.skipTest("no redis-server on PATH")
        try:
            services.postgres_bindir()
        except BenchError as e:
            raise self.skipTest(str(e)) from None

    def test_start_and_stop(self) -> None:
        """
        Without C{--redis} and C{--database}, a throwaway Redis and
        PostgreSQL answer on UNIX sockets in a directory of their own;
        each run gets a fresh database, dropped after it; afterwards both
        processes are gone and the directory is removed.
        """
        with shared_services(None, None) as shared:
            assert shared.postgres is not None
            self.assertTrue(shared.own_redis)
            self.assertTrue(shared.redis.startswith("unix:path="))
            path = Path(shared.redis.removeprefix("unix:path="))
            self.assertTrue(path.is_socket())
            shared.probe.command("SET", "k", "v")
            self.assertIn("db0", shared.probe.info())
            shared.probe.flush()
            self.assertNotIn("db0", shared.probe.info())
            psql = shared.postgres.bindir / "psql"
            with shared.postgres.database() as first:
                with shared.postgres.database() as second:
                    self.assertNotEqual(first, second)
                done = subprocess.run(
                    [str(psql), first, "-tAc", "select current_database()"],
                    capture_output=True,
                    timeout=30,
                )
                self.assertEqual(done.stdout.strip(), b"bench1", done.stderr)
            self.assertIsNotNone(shared.postgres.cpu_seconds())
            pids = dict(shared.pids)
        for name, pid in pids.items():
            self.assertTrue(_gone(pid), name)
        self.assertFalse(path.parent.exists())


def _gone(pid: int) -> bool:
    """
    Whether C{pid} has exited: no such process, or a zombie (PostgreSQL's
    server is a daemon, whose parent, not this process, reaps it).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"
