"""
txredisapi against the real Redis of L{tests.support.services}, on the
default reactor: the plumbing the backplane will stand on. Commands go over a
connection that a L{ClientService} keeps, from the endpoint string in
C{CHAT_TEST_REDIS}; a subscriber is a L{SubscriberProtocol} on a connection of
its own. Every key and channel is new to each test, so runs never meet.
"""

from __future__ import annotations

import uuid
from typing import Any

import txredisapi
from twisted.application.internet import ClientService
from twisted.internet import reactor
from twisted.internet.defer import DeferredQueue
from twisted.internet.endpoints import clientFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from tests.support.helpers import deferred_test
from tests.support.services import redis_endpoint


class _Subscriber(txredisapi.SubscriberProtocol):
    """Queues every message it receives, as (channel, message)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: DeferredQueue[tuple[str, str]] = DeferredQueue()

    def messageReceived(self, pattern: str | None, channel: str, message: str) -> None:
        self.messages.put((channel, message))


class RedisTests(TestCase):
    def setUp(self) -> None:
        self.endpoint = redis_endpoint(self)
        self.prefix = f"test:{uuid.uuid4().hex}:"

    async def connect(self, protocol: type[Protocol]) -> Any:
        """
        A connection of C{protocol} to the test Redis, kept by a
        L{ClientService} that is stopped (closing it) in the test's cleanup.
        A wrong address fails at once instead of retrying until the timeout.
        """
        service = ClientService(
            clientFromString(reactor, self.endpoint), Factory.forProtocol(protocol)
        )
        service.startService()
        self.addCleanup(service.stopService)
        connection = await service.whenConnected(failAfterFailures=1)
        # Ready once AUTH and SELECT are done (none here): at once.
        return await connection.whenConnected()

    @deferred_test
    async def test_set_get(self) -> None:
        """SET with an expiry, then GET, on one connection."""
        redis = await self.connect(txredisapi.RedisProtocol)
        key = self.prefix + "greeting"
        self.assertEqual(await redis.set(key, "hello", expire=60), "OK")
        self.assertEqual(await redis.get(key), "hello")
        self.assertIsNone(await redis.get(self.prefix + "missing"))

    @deferred_test
    async def test_set_only_if_not_exists(self) -> None:
        """SET NX PX, the nick lease: the second claim gets nothing."""
        redis = await self.connect(txredisapi.RedisProtocol)
        key = self.prefix + "nick"
        first = await redis.set(key, "node1", pexpire=15000, only_if_not_exists=True)
        second = await redis.set(key, "node2", pexpire=15000, only_if_not_exists=True)
        self.assertEqual((first, second), ("OK", None))
        self.assertEqual(await redis.get(key), "node1")

    @deferred_test
    async def test_publish_reaches_subscriber(self) -> None:
        """
        A PUBLISH on one connection reaches the subscriber on another, once
        SUBSCRIBE has been answered.
        """
        redis = await self.connect(txredisapi.RedisProtocol)
        subscriber = await self.connect(_Subscriber)
        channel = self.prefix + "room"
        self.assertEqual(
            list(await subscriber.subscribe(channel)), ["subscribe", channel, 1]
        )
        self.assertEqual(await redis.publish(channel, "hello"), 1)
        self.assertEqual(await subscriber.messages.get(), (channel, "hello"))

    @deferred_test
    async def test_stream_round_trip(self) -> None:
        """
        XADD with explicit IDs and XRANGE, through execute_command (txredisapi
        has no stream helpers); an ID at or below the top is refused.
        """
        redis = await self.connect(txredisapi.RedisProtocol)
        log = self.prefix + "log"
        self.assertEqual(
            await redis.execute_command("XADD", log, "1-0", "d", "one"), "1-0"
        )
        self.assertEqual(
            await redis.execute_command("XADD", log, "2-0", "d", "two"), "2-0"
        )
        with self.assertRaises(txredisapi.ResponseError):
            await redis.execute_command("XADD", log, "2-0", "d", "again")
        self.assertEqual(
            await redis.execute_command("XRANGE", log, "-", "+"),
            [["1-0", ["d", "one"]], ["2-0", ["d", "two"]]],
        )
        self.assertEqual(
            await redis.execute_command("XRANGE", log, "(1-0", "+"),
            [["2-0", ["d", "two"]]],
        )

    @deferred_test
    async def test_factory_from_endpoint(self) -> None:
        """
        txredisapi's own pool, connected from the same endpoint string through
        C{RedisFactory.startConnecting} (1.6), and its disconnect, which
        leaves nothing behind on the reactor.
        """
        factory = txredisapi.RedisFactory(self.endpoint, None, 2)
        factory.startConnecting(clientFromString(reactor, self.endpoint))
        # Once only: a second disconnect() run from the callbacks of the
        # first re-enters ClientService's state machine, which raises.
        try:
            # Fires when the whole pool is connected.
            redis = await factory.deferred
            key = self.prefix + "pool"
            self.assertEqual(await redis.ping(), "PONG")
            self.assertEqual(await redis.incr(key), 1)
            self.assertEqual(await redis.incr(key), 2)
            self.assertEqual(factory.size, 2)
        finally:
            await factory.disconnect()
        self.assertEqual(factory.size, 0)
