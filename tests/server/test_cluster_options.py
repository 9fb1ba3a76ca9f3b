"""
The cluster's options: C{--redis}, C{--node-id} and its timers, checked
before anything starts.
"""

from __future__ import annotations

import re

from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from chatservice.cluster.backplane import Timers
from chatservice.server.cluster import redis_backplane
from chatservice.server.options import NODE_ID, timers_from
from tests.server.test_options import parse

PG = "postgresql://chat@/chat?host=/run/postgresql"


class ClusterOptionTests(SynchronousTestCase):
    def test_off(self) -> None:
        """Without --redis the server is alone, whatever its database."""
        options = parse()
        self.assertIsNone(options["redis"])
        self.assertTrue(NODE_ID.fullmatch(options["node-id"]))

    def test_redis(self) -> None:
        """--redis takes an endpoint string or a URL, as given."""
        for address in (
            "unix:/run/redis.sock",
            "tcp:host=127.0.0.1:port=6379",
            "redis://127.0.0.1:6379/0",
        ):
            options = parse("--redis", address, "--database", PG)
            self.assertEqual(options["redis"], address)

    def test_badRedis(self) -> None:
        """An address that is neither fails, saying so."""
        error = self.assertRaises(
            usage.UsageError, parse, "--redis", "nonsense:1", "--database", PG
        )
        self.assertIn("--redis", str(error))

    def test_sqliteRefused(self) -> None:
        """
        With --redis, a SQLite file is refused in one line: each process's
        own file would split history and accounts.
        """
        error = self.assertRaises(
            usage.UsageError, parse, "--redis", "unix:/run/redis.sock"
        )
        self.assertIn("postgresql://", str(error))
        self.assertIn("--database", str(error))

    def test_nodeId(self) -> None:
        self.assertEqual(parse("--node-id", "a-1.x_y")["node-id"], "a-1.x_y")
        for bad in ("", "a:b", "a b", "x" * 65, "a/b"):
            self.assertRaises(usage.UsageError, parse, "--node-id", bad)

    def test_redisPrefix(self) -> None:
        """
        --redis-prefix puts the cluster's keys under another prefix, so that
        clusters (and test runs) can share one Redis.
        """
        self.assertEqual(parse()["redis-prefix"], "chat:")
        self.assertEqual(parse("--redis-prefix", "e2e:1f:")["redis-prefix"], "e2e:1f:")
        for bad in ("", "a b", "x" * 65, "caf\u00e9"):
            self.assertRaises(usage.UsageError, parse, "--redis-prefix", bad)

    def test_redisPrefixReachesTheBackplane(self) -> None:
        from chatservice.cluster.redis import RedisBackplane

        backplane = redis_backplane(Clock(), "unix:/r.sock", "a", Timers(), "x:")
        assert isinstance(backplane, RedisBackplane)
        self.assertEqual((backplane.prefix, backplane.channel), ("x:", "x:log"))

    def test_timers(self) -> None:
        options = parse(
            "--redis",
            "unix:/r.sock",
            "--database",
            PG,
            "--heartbeat",
            "0.2",
            "--dead-after",
            "1",
            "--lease",
            "1.5",
            "--lease-margin",
            "0.5",
        )
        self.assertEqual(
            timers_from(options),
            Timers(heartbeat=0.2, dead_after=1.0, lease=1.5, fence_margin=0.5),
        )

    def test_marginBelowLease(self) -> None:
        error = self.assertRaises(
            usage.UsageError,
            parse,
            "--redis",
            "unix:/r.sock",
            "--database",
            PG,
            "--lease",
            "2",
            "--lease-margin",
            "2",
        )
        self.assertTrue(re.search("--lease-margin", str(error)))

    def test_heartbeatWithinDeadAfter(self) -> None:
        """
        A node must be able to miss a beat before it counts as lost: a
        heartbeat of more than half of --dead-after is refused.
        """
        error = self.assertRaises(
            usage.UsageError,
            parse,
            "--redis",
            "unix:/r.sock",
            "--database",
            PG,
            "--heartbeat",
            "3",
            "--dead-after",
            "5",
        )
        self.assertIn("--heartbeat", str(error))
        self.assertIn("half of --dead-after", str(error))
