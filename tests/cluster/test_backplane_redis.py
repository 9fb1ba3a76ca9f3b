"""
The Redis backplane (L{chatservice.cluster.redis}).

  - L{EndpointFromTests}: addresses, as an operator writes them.
  - L{FakeConnectionTests}: the publishing pipeline and fencing on a
    L{Clock}, the command connection a fake that answers, refuses, or
    hangs as the test says.
  - L{RedisBackplaneTests}: several backplanes on the real Redis of
    L{tests.support.services}, short timers, one key prefix per test. Waits
    are for a condition, bounded; none is a timing assertion.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import txredisapi
from twisted.application.internet import ClientService
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.endpoints import clientFromString
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock, LoopingCall, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from chatservice.cluster.backplane import Timers
from chatservice.cluster.redis import (
    SCRIPTS,
    Address,
    RedisBackplane,
    endpoint_from,
)
from tests.support.cluster import Recorder
from tests.support.helpers import capture_events, deferred_test
from tests.support.services import redis_endpoint

SHORT = Timers(heartbeat=0.05, dead_after=0.3, lease=0.6, fence_margin=0.2)


class EndpointFromTests(SynchronousTestCase):
    def test_endpoint_strings_kept(self) -> None:
        """A Twisted client endpoint string is taken as it is."""
        for text in ("unix:path=/run/redis.sock", "tcp:host=redis:port=6380"):
            self.assertEqual(endpoint_from(text), Address(text))

    def test_redis_url(self) -> None:
        self.assertEqual(
            endpoint_from("redis://localhost:6380/2"),
            Address("tcp:host=localhost:port=6380", 2),
        )
        self.assertEqual(
            endpoint_from("redis://redis.example"),
            Address("tcp:host=redis.example:port=6379"),
        )
        self.assertEqual(
            endpoint_from("redis://"), Address("tcp:host=localhost:port=6379")
        )

    def test_redis_url_password_tls_ipv6(self) -> None:
        self.assertEqual(
            endpoint_from("rediss://chat:s%3Acret@[::1]:6390/0"),
            Address(r"tls:host=\:\:1:port=6390", 0, "s:cret", "chat"),
        )
        self.assertEqual(
            endpoint_from("redis://:pw@host?db=3"),
            Address("tcp:host=host:port=6379", 3, "pw"),
        )

    def test_unix_url(self) -> None:
        self.assertEqual(
            endpoint_from("unix:/run/redis/redis.sock"),
            Address("unix:path=/run/redis/redis.sock"),
        )
        self.assertEqual(
            endpoint_from("unix:///tmp/a:b.sock?db=1"),
            Address(r"unix:path=/tmp/a\:b.sock", 1),
        )

    def test_unix_endpoint_string(self) -> None:
        """C{unix:/path} followed by arguments is an endpoint string."""
        text = "unix:/run/redis.sock:timeout=5"
        self.assertEqual(endpoint_from(text), Address(text))

    def test_bad(self) -> None:
        bad = ("localhost", "redis://host/x", "unix:/", "redis://host:99999", "nope:1")
        for text in bad:
            with self.assertRaises(ValueError, msg=text):
                endpoint_from(text)

    def test_parses(self) -> None:
        """What comes out is an endpoint Twisted can make."""
        for text in ("redis://localhost:6380/2", "unix:/run/redis.sock"):
            clientFromString(reactor, endpoint_from(text).endpoint)

    def test_node_names(self) -> None:
        """A node's name is framed by ':' in the log: it may not hold one."""
        for bad in ("", "a:b", "a b"):
            with self.assertRaises(ValueError):
                RedisBackplane("unix:path=/nowhere", bad)


_BY_REF = {s.sha: s.name for s in SCRIPTS} | {s.source: s.name for s in SCRIPTS}


class FakeRedis:
    """
    A command connection that runs no Lua: each script has a canned answer
    here. C{hang} leaves every command unanswered; C{manual} leaves the
    publishes to the test (L{pending}); C{noscript} refuses EVALSHA.
    """

    def __init__(self) -> None:
        self.epoch = b"e1"
        self.seq = 0
        self.calls: list[tuple[str, str, list[Any]]] = []
        self.hang = False
        self.manual = False
        self.noscript = False
        self.refuse = False
        self.pending: list[tuple[Deferred[Any], list[Any]]] = []
        self.appended: list[bytes] = []

    def execute_command(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
        command, ref, nkeys, *rest = args
        name = _BY_REF[ref]
        argv = list(rest[nkeys:])
        self.calls.append((command, name, argv))
        if self.hang:
            return Deferred()
        if self.noscript and command == "EVALSHA":
            return fail(txredisapi.ResponseError("NOSCRIPT No matching script."))
        if name == "publish" and self.refuse:
            return fail(txredisapi.ResponseError("OOM command not allowed"))
        if name == "publish" and self.manual:
            d: Deferred[Any] = Deferred()
            self.pending.append((d, argv))
            return d
        reply: Any = getattr(self, "_" + name)(argv)
        return succeed(reply)

    def publishes(self) -> list[tuple[str, bytes, int, int]]:
        """(command, data, n, first n) of every publish sent."""
        return [(c, a[5], a[3], a[4]) for c, name, a in self.calls if name == "publish"]

    def _heartbeat(self, argv: list[Any]) -> Any:
        # Epoch, seq, live nodes, dead ones, and this node beating steadily.
        return [self.epoch, b"%d" % self.seq, [b"a"], [], 1]

    def _publish(self, argv: list[Any]) -> int:
        if argv[0].encode() != self.epoch:
            return -1
        self.seq += 1
        self.appended.append(argv[5])
        return self.seq

    def _fetch(self, argv: list[Any]) -> Any:
        return [self.epoch, []]

    def _claim(self, argv: list[Any]) -> int:
        return 1

    def _renew(self, argv: list[Any]) -> list[bytes]:
        return []

    def _release(self, argv: list[Any]) -> int:
        return 1


class FakeConnectionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.redis = FakeRedis()
        self.listener = Recorder()

    def backplane(self, queue_max: int = 10_000) -> RedisBackplane:
        plane = RedisBackplane(
            "unix:path=/nowhere", "a", Timers(), clock=self.clock, queue_max=queue_max
        )
        self.addCleanup(plane._stop_loops)
        return plane

    def running(self) -> RedisBackplane:
        """Connected, beating (once already) and renewing."""
        plane = self.backplane()
        plane._attach(self.redis)
        plane._run(self.listener)
        self.assertEqual(plane.epoch, "e1")
        return plane

    def test_fenced_once_per_outage(self) -> None:
        """
        Commands that go unanswered for longer than fence_after (by the
        reactor's clock) fence the node once, and it forgets its claims;
        answered again, it carries on, and a later outage fences it again.
        """
        plane = self.running()
        self.assertTrue(self.successResultOf(plane.claim("nick", "s1")))
        self.redis.hang = True
        fence_after = plane.timers.fence_after
        self.clock.pump([1.0] * int(fence_after))
        self.assertEqual(self.listener.fences, 0)
        self.clock.pump([1.0] * 2)
        self.assertEqual(self.listener.fences, 1)
        self.clock.pump([1.0] * 30)
        self.assertEqual(self.listener.fences, 1)
        self.redis.hang = False
        self.redis.calls.clear()
        self.clock.pump([1.0] * 30)
        self.assertEqual(self.listener.fences, 1)
        # The claim is forgotten: renewals name no key.
        renewals = [a for _, name, a in self.redis.calls if name == "renew"]
        self.assertTrue(renewals)
        self.assertEqual({len(a) for a in renewals}, {2})
        self.assertEqual(self.listener.lost_claims, [])
        self.redis.hang = True
        self.clock.pump([1.0] * 30)
        self.assertEqual(self.listener.fences, 2)

    def test_live_nodes_without_answer(self) -> None:
        """
        live_nodes() with Redis silent answers, after the reply timeout,
        the nodes of the last heartbeat.
        """
        plane = self.running()
        self.redis.hang = True
        d = plane.live_nodes()
        self.assertNoResult(d)
        self.clock.advance(plane._reply_timeout)
        self.assertEqual(self.successResultOf(d), ["a"])

    def test_queue_while_disconnected(self) -> None:
        """
        Batches published with no connection wait, bounded; what overflows
        is counted and logged with its count; the rest go out in order once
        connected.
        """
        events = capture_events(self)
        plane = self.backplane(queue_max=3)
        plane._run(self.listener)
        for data in (b"1", b"2", b"3", b"4", b"5"):
            plane.publish(data)
        self.assertEqual(plane.stats.dropped, 2)
        self.assertEqual(self.redis.calls, [])
        plane._attach(self.redis)
        self.assertEqual(self.redis.appended, [b"1", b"2", b"3"])
        self.assertEqual(plane.stats.published, 3)
        self.assertEqual(
            [(c, n, first) for c, _, n, first in self.redis.publishes()],
            [("EVALSHA", 1, 1), ("EVALSHA", 2, 2), ("EVALSHA", 3, 3)],
        )
        counts = [e.get("count") for e in events if "count" in e]
        self.assertIn(2, counts)

    def test_noscript_and_gap(self) -> None:
        """
        Publishes are pipelined. One that Redis lost the script for is sent
        again with EVAL, and every later one after it (the script refuses
        one that would overtake it); answers to what was given up are
        ignored.
        """
        plane = self.running()
        self.redis.manual = True
        plane.publish(b"x1")
        plane.publish(b"x2")
        (d1, _), (d2, _) = self.redis.pending
        d1.errback(txredisapi.ResponseError("NOSCRIPT No matching script."))
        d2.callback(-2)
        self.assertEqual(
            self.redis.publishes(),
            [
                ("EVALSHA", b"x1", 1, 1),
                ("EVALSHA", b"x2", 2, 1),
                ("EVAL", b"x1", 1, 1),
                ("EVALSHA", b"x2", 2, 1),
            ],
        )
        self.redis.pending[2][0].callback(7)
        self.redis.pending[3][0].callback(0)  # appended already: not again
        self.assertEqual(plane.stats.published, 2)
        self.assertEqual(len(plane._queue), 0)

    def test_refused_retried_then_dropped(self) -> None:
        """
        A batch Redis refuses (out of memory) is tried again a heartbeat
        later, and dropped, counted, after five refusals; the next goes on.
        """
        plane = self.running()
        self.redis.refuse = True
        plane.publish(b"x")
        self.clock.pump([plane.timers.heartbeat / 2] * 7)
        self.assertEqual(len(self.redis.publishes()), 4)
        self.assertEqual(plane.stats.dropped, 0)
        self.clock.pump([plane.timers.heartbeat / 2] * 2)
        self.assertEqual(len(self.redis.publishes()), 5)
        self.assertEqual(plane.stats.dropped, 1)
        self.redis.refuse = False
        plane.publish(b"y")
        self.assertEqual(self.redis.appended, [b"y"])

    def test_stop_hears_its_last_batch(self) -> None:
        """
        stop() waits until the node's own last batch has come back through
        the log and was handed to the listener (its lines reach its users
        and its history), then leaves.
        """
        plane = self.running()
        plane.publish(b"last words")
        self.assertEqual(self.redis.appended, [b"last words"])
        stopped = plane.stop()
        self.assertNoResult(stopped)
        self.assertFalse([c for c in self.redis.calls if c[1] == "leave"])
        plane._message(b"e1:1:a:last words")
        self.clock.advance(0)
        self.successResultOf(stopped)
        self.assertEqual(self.listener.data(), [b"last words"])
        self.assertTrue([c for c in self.redis.calls if c[1] == "leave"])

    def test_stop_waits_for_its_last_batch_bounded(self) -> None:
        """
        A last batch that does not come back keeps stop() waiting no longer
        than a reply may take, with a log line.
        """
        events = capture_events(self)
        plane = self.running()
        plane.publish(b"lost words")
        stopped = plane.stop()
        self.assertNoResult(stopped)
        self.clock.advance(plane._reply_timeout)
        self.successResultOf(stopped)
        self.assertEqual(self.listener.data(), [])
        self.assertTrue(
            [e for e in events if e.get("log_format", "").startswith("Stopping before")]
        )

    def test_epoch_refused(self) -> None:
        """
        A publish refused for its epoch makes the node take in the new
        epoch first: reset(), whose own publishes go out before the refused
        batch, numbered anew in that order; then the log is read from the
        new epoch's start.
        """
        plane = self.running()
        self.listener.on_reset = lambda epoch: plane.publish(b"again")
        self.redis.epoch = b"e2"
        self.redis.seq = 0
        plane.publish(b"x")
        self.assertEqual(self.listener.resets, ["e2"])
        self.assertEqual(plane.epoch, "e2")
        self.assertEqual(plane.stats.resets, 1)
        self.assertEqual(self.redis.appended, [b"again", b"x"])
        self.assertEqual(
            self.redis.publishes()[-2:],
            [("EVALSHA", b"again", 3, 3), ("EVALSHA", b"x", 4, 4)],
        )
        fetches = [a for _, name, a in self.redis.calls if name == "fetch"]
        self.assertEqual(fetches[-1], ["e2", 0])


class RedisBackplaneTests(TestCase):
    def setUp(self) -> None:
        self.endpoint = redis_endpoint(self)
        self.prefix = f"test:{uuid.uuid4().hex[:12]}:"

    async def node(
        self, name: str, timers: Timers = SHORT
    ) -> tuple[RedisBackplane, Recorder]:
        plane = RedisBackplane(self.endpoint, name, timers, prefix=self.prefix)
        listener = Recorder()
        await plane.start(listener)
        self.addCleanup(plane.stop)
        return plane, listener

    async def admin(self) -> Any:
        """A plain connection to the same Redis, for the test's own commands."""
        service = ClientService(
            clientFromString(reactor, self.endpoint),
            Factory.forProtocol(txredisapi.RedisProtocol),
        )
        service.startService()
        self.addCleanup(service.stopService)
        connection = await service.whenConnected(failAfterFailures=1)
        return await connection.whenConnected()

    async def until(
        self, condition: Callable[[], object], what: str, timeout: float = 5.0
    ) -> None:
        """Wait until C{condition()} holds; fail after C{timeout} seconds."""
        deadline = reactor.seconds() + timeout
        while not condition():
            if reactor.seconds() > deadline:
                self.fail(f"Timed out waiting for {what}")
            await deferLater(reactor, 0.01, lambda: None)

    # The log

    @deferred_test
    async def test_same_order_everywhere(self) -> None:
        """
        Two nodes publishing interleaved receive every batch, their own
        included, once each, in one order, numbered 1, 2, 3, ...
        """
        a, la = await self.node("a")
        b, lb = await self.node("b")
        for i in range(20):
            a.publish(b"a%d" % i)
            b.publish(b"b%d" % i)
            if i % 3 == 0:
                await deferLater(reactor, 0, lambda: None)
        await self.until(lambda: len(la.batches) >= 40 and len(lb.batches) >= 40, "40")
        self.assertEqual(la.batches, lb.batches)
        self.assertEqual([x.seq for x in la.batches], list(range(1, 41)))
        self.assertEqual(
            sorted(la.data()),
            sorted([b"a%d" % i for i in range(20)] + [b"b%d" % i for i in range(20)]),
        )
        # Each node's own batches keep the order it published them in.
        mine = [x.data for x in la.batches if x.node == "a"]
        self.assertEqual(mine, [b"a%d" % i for i in range(20)])
        self.assertEqual({x.epoch for x in la.batches}, {a.epoch})
        self.assertEqual((a.stats.published, a.stats.received), (20, 40))
        self.assertEqual(a.stats.missed, 0)

    @deferred_test
    async def test_pubsub_killed(self) -> None:
        """
        Killing the subscriptions while a node keeps publishing loses
        nothing and repeats nothing: the batches published meanwhile come
        from the stream.
        """
        a, la = await self.node("a")
        b, lb = await self.node("b")
        admin = await self.admin()
        sent: list[bytes] = []

        def send() -> None:
            sent.append(b"%d" % len(sent))
            b.publish(sent[-1])

        loop = LoopingCall(send)
        loop.start(0.005)
        try:
            await self.until(lambda: len(la.batches) >= 5, "the first batches")
            killed = await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            self.assertEqual(killed, 2)
            await self.until(
                lambda: a.stats.reconnects and b.stats.reconnects, "resubscription"
            )
            count = len(sent)
            await self.until(lambda: len(sent) > count + 10, "more batches")
        finally:
            loop.stop()
        await self.until(
            lambda: len(la.batches) >= len(sent) and len(lb.batches) >= len(sent),
            "every batch",
        )
        self.assertEqual(la.data(), sent)
        self.assertEqual(lb.data(), sent)
        self.assertEqual(a.stats.received, len(sent))
        self.assertGreater(a.stats.recovered, 0)
        self.assertGreater(b.stats.recovered, 0)
        self.assertEqual(la.missed_counts, [])

    @deferred_test
    async def test_flushall_resets(self) -> None:
        """
        Redis losing its data is a new epoch: every node is told, the
        batches each asserts itself with reach all, and publishing goes on
        (a batch refused for its old epoch goes out after its node's).
        """
        a, la = await self.node("a")
        b, lb = await self.node("b")
        la.on_reset = lambda epoch: a.publish(b"a again")
        lb.on_reset = lambda epoch: b.publish(b"b again")
        admin = await self.admin()
        a.publish(b"before")
        await self.until(lambda: len(la.batches) == len(lb.batches) == 1, "before")
        old = a.epoch
        await admin.flushall()
        b.publish(b"after")
        await self.until(lambda: a.stats.resets and b.stats.resets, "both resets")
        await self.until(
            lambda: len(la.batches) >= 4 and len(lb.batches) >= 4, "the new epoch's"
        )
        self.assertNotEqual(a.epoch, old)
        self.assertEqual(a.epoch, b.epoch)
        self.assertEqual(la.resets, [a.epoch])
        self.assertEqual(lb.resets, [a.epoch])
        self.assertEqual(la.batches, lb.batches)
        new = la.batches[1:]
        self.assertEqual([x.seq for x in new], [1, 2, 3])
        self.assertEqual({x.epoch for x in new}, {a.epoch})
        data = [x.data for x in new]
        self.assertEqual(sorted(data), [b"a again", b"after", b"b again"])
        self.assertLess(data.index(b"b again"), data.index(b"after"))
        a.publish(b"later")
        await self.until(lambda: lb.data()[-1:] == [b"later"], "later")

    @deferred_test
    async def test_script_flush(self) -> None:
        """Redis forgetting the scripts: EVAL, and everything goes on."""
        a, la = await self.node("a")
        admin = await self.admin()
        await admin.script_flush()
        a.publish(b"1")
        a.publish(b"2")
        self.assertTrue(await a.claim("nick", "s1"))
        await self.until(lambda: len(la.batches) == 2, "both")
        self.assertEqual(la.data(), [b"1", b"2"])

    @deferred_test
    async def test_not_a_batch(self) -> None:
        """Something else on the channel is logged and ignored."""
        events = capture_events(self)
        a, la = await self.node("a")
        admin = await self.admin()
        await admin.publish(a.channel, "nonsense")
        a.publish(b"1")
        await self.until(lambda: la.data() == [b"1"], "the batch")
        self.assertTrue([e for e in events if "Not a batch" in e.get("log_format", "")])

    # Claims

    @deferred_test
    async def test_claim_race(self) -> None:
        """Two nodes, one key, at once: exactly one gets it."""
        a, _ = await self.node("a")
        b, _ = await self.node("b")
        got = await gatherResults([a.claim("nick", "s1"), b.claim("nick", "s2")])
        self.assertEqual(sorted(got), [False, True])
        winner, loser = (a, b) if got[0] else (b, a)
        holder = "s1" if got[0] else "s2"
        # The holder may claim again; another session of its node may not.
        self.assertTrue(await winner.claim("nick", holder))
        self.assertFalse(await winner.claim("nick", "other"))
        self.assertFalse(await loser.claim("nick", holder))

    @deferred_test
    async def test_force(self) -> None:
        """
        A forced claim takes the key; the node that held it finds out at
        its next renewal.
        """
        a, la = await self.node("a")
        b, _ = await self.node("b")
        admin = await self.admin()
        self.assertTrue(await a.claim("nick", "s1"))
        self.assertTrue(await b.claim("nick", "s2", force=True))
        self.assertEqual(await admin.get(self.prefix + "claim:nick"), "b:s2")
        await self.until(lambda: la.lost_claims, "claims_lost")
        self.assertEqual(la.lost_claims, [["nick"]])
        self.assertEqual(a.stats.claims_lost, 1)

    @deferred_test
    async def test_release_compares(self) -> None:
        """Release frees a key only for its holder."""
        a, _ = await self.node("a")
        b, _ = await self.node("b")
        self.assertTrue(await a.claim("nick", "s1"))
        b.release("nick", "s1")
        a.release("nick", "s9")
        # release() answers nothing: a later command on the same
        # connection is answered after it.
        await a.live_nodes()
        self.assertFalse(await b.claim("nick", "s2"))
        a.release("nick", "s1")
        await a.live_nodes()
        self.assertTrue(await b.claim("nick", "s2"))

    @deferred_test
    async def test_lease_renewed_then_lost(self) -> None:
        """
        Renewal keeps a claim past its lease; a claim deleted behind the
        node's back is reported lost at the next renewal.
        """
        a, la = await self.node("a")
        admin = await self.admin()
        self.assertTrue(await a.claim("nick", "s1"))
        await self.until(lambda: a.stats.renewals >= 5, "renewals past the lease")
        key = self.prefix + "claim:nick"
        self.assertEqual(await admin.get(key), "a:s1")
        members = await admin.smembers(self.prefix + "node:a:claims")
        self.assertEqual(members, {key})
        await admin.delete(key)
        await self.until(lambda: la.lost_claims, "claims_lost")
        self.assertEqual(la.lost_claims, [["nick"]])

    # Liveness

    @deferred_test
    async def test_node_death(self) -> None:
        """
        A node that stops beating (and gives nothing up) is announced by
        exactly one survivor, and its claims are freed long before their
        lease ends.
        """
        timers = Timers(heartbeat=0.05, dead_after=0.3, lease=30.0, fence_margin=10.0)
        a, la = await self.node("a", timers)
        b, lb = await self.node("b", timers)
        c, lc = await self.node("c", timers)
        self.assertTrue(await a.claim("nick", "s1"))
        self.assertEqual(await b.live_nodes(), ["a", "b", "c"])
        await a.crash()
        await self.until(lambda: lb.lost_nodes or lc.lost_nodes, "node_lost")
        self.assertTrue(await c.claim("nick", "s3"))
        self.assertEqual(await b.live_nodes(), ["b", "c"])
        # A reap either survivor sent is answered before a later command of
        # its own; any sent after finds the node gone.
        await b.live_nodes()
        await c.live_nodes()
        await self.until(
            lambda: b.stats.nodes == c.stats.nodes == {"b", "c"}, "beats without a"
        )
        self.assertEqual(sorted(lb.lost_nodes + lc.lost_nodes), ["a"])
        self.assertEqual(la.lost_nodes, [])
        self.assertEqual(b.stats.nodes, {"b", "c"})

    @deferred_test
    async def test_everyone_paused(self) -> None:
        """
        After a pause of everyone (the machine, say) longer than dead_after,
        nobody is announced lost: the first beat Redis hears after it is as
        late as the others', and judges nobody.
        """
        timers = Timers(heartbeat=0.05, dead_after=0.3, lease=30.0, fence_margin=10.0)
        a, la = await self.node("a", timers)
        b, lb = await self.node("b", timers)
        await self.until(lambda: a.stats.nodes == b.stats.nodes == {"a", "b"}, "beats")
        admin = await self.admin()
        # What Redis has after the pause: both last beat a second ago.
        seconds, micros = await admin.execute_command("TIME")
        then = int(seconds) * 1000 + int(micros) // 1000 - 1000
        nodes = self.prefix + "nodes"
        await admin.execute_command("ZADD", nodes, "XX", then, "a", then, "b")
        # Each has beaten a few times since, as Redis's clock tells.
        deadline = reactor.seconds() + 5.0
        while True:
            scores = await admin.execute_command("ZMSCORE", nodes, "a", "b")
            if all(score and float(score) > then + 1200 for score in scores):
                break
            if reactor.seconds() > deadline:
                self.fail(f"no beats after the pause: {scores}")
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(la.lost_nodes + lb.lost_nodes, [])
        self.assertEqual(await a.live_nodes(), ["a", "b"])

    @deferred_test
    async def test_stop_leaves(self) -> None:
        """A node that stops gives up its claims and its place at once."""
        timers = Timers(heartbeat=0.05, dead_after=5.0, lease=30.0, fence_margin=10.0)
        a, _ = await self.node("a", timers)
        b, lb = await self.node("b", timers)
        self.assertTrue(await a.claim("nick", "s1"))
        a.publish(b"last words")
        await a.stop()
        self.assertEqual(await b.live_nodes(), ["b"])
        self.assertTrue(await b.claim("nick", "s2"))
        await self.until(lambda: lb.data() == [b"last words"], "the last batch")
        self.assertEqual(lb.lost_nodes, [])

    @deferred_test
    async def test_stats(self) -> None:
        """Round trip, nodes and renewals are counted."""
        a, _ = await self.node("a")
        await self.node("b")
        await self.until(
            lambda: a.stats.nodes == {"a", "b"} and a.stats.renewals >= 1, "stats"
        )
        self.assertGreater(a.stats.round_trip, 0.0)
        self.assertLess(a.stats.round_trip, 5.0)
