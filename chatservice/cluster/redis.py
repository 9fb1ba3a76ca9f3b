"""
The backplane on Redis (see L{chatservice.cluster.backplane}), through
txredisapi on the default reactor.

Two connections, each kept by a L{ClientService} of its own, which makes it
again whenever it drops: one for commands (every one a Lua script, loaded
with SCRIPT LOAD on each connection, run with EVALSHA, and EVAL when Redis
says NOSCRIPT) and one subscribed to the log's channel. txredisapi's own
C{RedisFactory} is not used (subclassing it is what pins Synapse below
txredisapi 1.6).

The keys, under a prefix (C{chat:} by default):

  - C{epoch} STRING: the log's life. A node sets it (SET NX, a random name)
    when it finds none; a node that finds it missing or changed knows that
    Redis lost its data (restarted empty, FLUSHALL).
  - C{seq} STRING: the last sequence number given.
  - C{log} STREAM: the window of the log, ids C{<seq>-0}, fields C{node} and
    C{data}, C{MAXLEN ~ window}; and C{log}, the one pub/sub channel, on
    which the same script publishes C{epoch:seq:node:} + data.
  - C{sent} HASH: node -> C{<run>:<n>}, the number of the last batch of
    this run of the node appended. A batch sent again (its reply was lost
    with the connection) is not appended twice, and one never overtakes an
    earlier one that failed (see L{PUBLISH}).
  - C{claim:<key>} STRING C{<node>:<holder>} with a lease (PX); the node
    renews all of its claims at once.
  - C{node:<node>:claims} SET: the claim keys a node holds, for its reaper.
  - C{nodes} ZSET: node -> its last heartbeat, in Redis's TIME (ms), so host
    clocks never need to agree.
  - C{reap:<node>} STRING, SET NX PX: the one survivor that announces a
    node's death.

Ordering: a node's own batches come back to it through the subscription,
like everyone else's, and L{InOrder} hands every batch on in the log's
order, filling gaps (a subscription that dropped) from the stream.

A new epoch: the node begins it at 0 (everything other nodes published in
it before this one noticed is wanted: their claims and rooms, asserted
again), calls L{Listener.reset}, and reads the stream. The publishing script
refuses a batch of an epoch that is over, so a node never appends into a new
epoch before it has noticed; its batches that were refused, or still
waiting, are published in the new epoch, after what its C{reset()}
published (as L{chatservice.cluster.memory} does). A batch that was appended
in the old epoch but whose reply was lost as Redis went down is then
appended twice, once in each epoch: the price of not dropping lines.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from typing import Protocol as Interface
from urllib.parse import parse_qs, unquote, urlsplit

import txredisapi  # type: ignore[import-untyped]
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import reactor as default_reactor
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.endpoints import clientFromString, quoteStringArgument
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatservice.cluster.backplane import BackplaneStats, Batch, Listener, Timers
from chatservice.cluster.order import InOrder

log = Logger()

WINDOW = 1000
"""Batches the stream keeps for gap filling."""

REAP_MS = 60_000
"""How long a reaper's claim on a dead node lasts."""


# Addresses


class Address(NamedTuple):
    """
    Where Redis is: a Twisted client endpoint string, and what to send once
    connected.
    """

    endpoint: str
    db: int | None = None
    password: str | None = None
    username: str | None = None


def endpoint_from(text: str) -> Address:
    """
    The address in C{text}: a Twisted client endpoint string as it is
    (C{unix:path=/run/redis.sock}, C{tcp:host=redis:port=6379}), or a URL:
    C{redis://[[user]:password@]host[:port][/db]}, C{rediss://...} (TLS),
    C{unix:/path/redis.sock} or C{unix:///path/redis.sock?db=1}.

    @raise ValueError: what is wrong with it (no host, no path, a bad
        number, not an endpoint Twisted knows).
    """
    text = text.strip()
    if text.startswith(("redis://", "rediss://")):
        url = urlsplit(text)
        host = url.hostname or "localhost"
        port = url.port or 6379
        kind = "tls" if url.scheme == "rediss" else "tcp"
        endpoint = f"{kind}:host={quoteStringArgument(host)}:port={port}"
        db_text = url.path.lstrip("/") or _query_db(url.query)
        return Address(
            endpoint,
            _db(db_text),
            unquote(url.password) if url.password is not None else None,
            unquote(url.username) if url.username else None,
        )
    rest = text.removeprefix("unix:")
    if text.startswith("unix://") or (
        rest.startswith("/") and not any(c in rest for c in ":=\\")
    ):
        # A URL; C{unix:/path:timeout=5} is an endpoint string.
        url = urlsplit(text)
        if not url.path or url.path == "/":
            raise ValueError(f"No socket path in {text!r}")
        path = quoteStringArgument(unquote(url.path))
        return Address(f"unix:path={path}", _db(_query_db(url.query)))
    try:
        clientFromString(default_reactor, text)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"Not a Redis address: {text!r} ({e})") from None
    return Address(text)


def _query_db(query: str) -> str:
    return parse_qs(query).get("db", [""])[0]


def _db(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"Not a Redis database number: {text!r}")
    return int(text)


# Scripts


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, and the SHA1 that EVALSHA names it by."""

    name: str
    source: bytes
    # Worked out once: every batch published names its script by it.
    sha: str


def _script(name: str, source: str) -> Script:
    data = source.strip().encode()
    return Script(name, data, hashlib.sha1(data).hexdigest())


PUBLISH = _script(
    "publish",
    """
-- KEYS: epoch, seq, log, sent
-- ARGV: epoch, node, run, n, first unacknowledged n, data, window, channel
-- Returns the batch's seq; 0 if it was appended already; -1 if the epoch
-- is not the current one; -2 if an earlier batch of the node is missing.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local n = tonumber(ARGV[4])
local last = tonumber(ARGV[5]) - 1
local record = redis.call('HGET', KEYS[4], ARGV[2])
if record then
  local run, done = string.match(record, '^(.*):(%d+)$')
  if run == ARGV[3] and tonumber(done) > last then last = tonumber(done) end
end
if n <= last then return 0 end
if n > last + 1 then return -2 end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], seq .. '-0',
           'node', ARGV[2], 'data', ARGV[6])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[3] .. ':' .. n)
redis.call('PUBLISH', ARGV[8],
           ARGV[1] .. ':' .. seq .. ':' .. ARGV[2] .. ':' .. ARGV[6])
return seq
""",
)
"""
Appends one batch: checks the epoch, takes the next seq, XADDs and
PUBLISHes, in one call. Each batch of a node's run is numbered; the script
appends only the next one after the last appended (or after those the node
has seen acknowledged), so a batch sent again after a lost reply is not
appended twice and none overtakes an earlier one whose EVALSHA failed.
"""

HEARTBEAT = _script(
    "heartbeat",
    """
-- KEYS: epoch, seq, nodes, reap key of this node
-- ARGV: node, an epoch to set if there is none, dead_after in ms
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local since = now - tonumber(ARGV[3])
local last = redis.call('ZSCORE', KEYS[3], ARGV[1])
local steady = 0
if last and tonumber(last) >= since then steady = 1 end
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('DEL', KEYS[4])
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[1], epoch, 'NX')
end
local seq = redis.call('GET', KEYS[2]) or '0'
return {epoch, seq,
        redis.call('ZRANGEBYSCORE', KEYS[3], since, '+inf'),
        redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. since),
        steady}
""",
)
"""
Beats (Redis's clock), sets the epoch if there is none, and returns the
epoch, the seq, the live nodes, the dead ones, and 1 if this node's last
beat was recent enough that it may judge the others (see
L{RedisBackplane._heartbeat}).
"""

REAP = _script(
    "reap",
    """
-- KEYS: reap key of the dead node, nodes, its claims set, sent
-- ARGV: this node, the dead node, dead_after in ms, reap lease in ms
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local beat = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not beat or tonumber(beat) >= now - tonumber(ARGV[3]) then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[4]) then return 0 end
local mine = ARGV[2] .. ':'
for _, key in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local value = redis.call('GET', key)
  if value and string.sub(value, 1, #mine) == mine then
    redis.call('DEL', key)
  end
end
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[2])
return 1
""",
)
"""
One survivor takes a dead node (SET NX PX), frees its claims (those still
its own) and forgets it; returns 1 to the one that did.
"""

CLAIM = _script(
    "claim",
    """
-- KEYS: claim key, claims set of this node
-- ARGV: value (node:holder), lease in ms, force (1 or 0), set lease in ms
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] and ARGV[3] ~= '1' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
""",
)
"""
SET NX PX, except that the holder may claim again what it holds, and
C{force} takes it from anyone; and the key joins the node's set.
"""

RELEASE = _script(
    "release",
    """
-- KEYS: claim key, claims set of this node; ARGV: value
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], KEYS[1])
end
return 1
""",
)
"""Compare and delete."""

RENEW = _script(
    "renew",
    """
-- KEYS: claims set of this node
-- ARGV: lease in ms, set lease in ms, then claim key, value, ...
local lost = {}
for i = 3, #ARGV, 2 do
  if redis.call('GET', ARGV[i]) == ARGV[i + 1] then
    redis.call('PEXPIRE', ARGV[i], ARGV[1])
    redis.call('SADD', KEYS[1], ARGV[i])
  else
    redis.call('SREM', KEYS[1], ARGV[i])
    table.insert(lost, ARGV[i])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return lost
""",
)
"""Renews every claim still the node's; returns those that are not."""

LIVE = _script(
    "live",
    """
-- KEYS: nodes; ARGV: dead_after in ms
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')
""",
)

FETCH = _script(
    "fetch",
    """
-- KEYS: epoch, log; ARGV: epoch, seq
-- The stream after seq, if the epoch is still the one given.
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then return {epoch or '', {}} end
return {epoch, redis.call('XRANGE', KEYS[2], '(' .. ARGV[2] .. '-0', '+')}
""",
)
"""Reads the window after a seq, with the epoch it belongs to."""

LEAVE = _script(
    "leave",
    """
-- KEYS: nodes, claims set of this node, sent
-- ARGV: node, then claim key, value, ...
for i = 2, #ARGV, 2 do
  if redis.call('GET', ARGV[i]) == ARGV[i + 1] then
    redis.call('DEL', ARGV[i])
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
""",
)
"""A node stopping: gives up its claims and its place."""

SCRIPTS = (PUBLISH, HEARTBEAT, REAP, CLAIM, RELEASE, RENEW, LIVE, FETCH, LEAVE)


# Connections


class Commands(Interface):
    """What the backplane uses of a txredisapi connection."""

    def execute_command(self, *args: object, **kwargs: object) -> Deferred[Any]: ...


def _is_noscript(failure: Failure) -> bool:
    return bool(
        failure.check(txredisapi.ResponseError)
        and "NOSCRIPT" in str(failure.value).upper()
    )


class _ProtocolFactory(Factory):
    """
    Builds txredisapi protocols for a L{ClientService}: what
    C{RedisFactory.buildProtocol} does, without the pool. Replies come as
    bytes, numbers unconverted: the log's data is bytes.
    """

    # Read by RedisProtocol.connectionMade when AUTH or SELECT fail.
    isLazy = False
    # Not a log line for every connection ClientService makes.
    noisy = False

    def __init__(
        self,
        protocol: Callable[..., Any],
        address: Address,
        reply_timeout: float | None,
        backplane: RedisBackplane,
    ) -> None:
        self.make = protocol
        self.address = address
        self.reply_timeout = reply_timeout
        self.backplane = backplane

    def buildProtocol(self, addr: object) -> Any:
        p = self.make(
            None,
            replyTimeout=self.reply_timeout,
            password=self.address.password,
            dbid=self.address.db,
            convertNumbers=False,
            username=self.address.username,
        )
        p.factory = self
        return p

    def stopTrying(self) -> None:
        """Called when AUTH or SELECT failed: the service tries again."""

    def connectionError(self, why: str) -> None:
        log.error("Redis refused the connection: {why}", why=why)


class _Subscriber(txredisapi.SubscriberProtocol):  # type: ignore[misc]
    """
    The connection that receives the log: it subscribes as soon as it is
    made, every time its L{ClientService} makes it again.
    """

    factory: _ProtocolFactory

    def connectionMade(self) -> Deferred[None]:
        d: Deferred[None] = super().connectionMade()
        d.addCallback(lambda _: self._subscribe())
        return d

    def _subscribe(self) -> None:
        if not self._ready:
            return  # AUTH failed: the connection is being dropped.
        backplane = self.factory.backplane
        d = self.subscribe(backplane.channel)
        d.addCallbacks(
            lambda _: backplane._subscribed(self),
            lambda f: log.info(
                "Could not subscribe to the cluster log: {error}",
                error=f.getErrorMessage(),
            ),
        )

    def messageReceived(
        self, pattern: bytes | None, channel: bytes, message: bytes
    ) -> None:
        self.factory.backplane._message(message)

    def connectionLost(self, why: Failure) -> None:
        super().connectionLost(why)
        self.factory.backplane._unsubscribed(self)


@dataclass(slots=True)
class _Out:
    """A batch waiting to be appended, and its number in this run."""

    n: int
    data: bytes


class _EpochChanged(Exception):
    """The epoch changed under a fetch: the reset reads the log anew."""


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class RedisBackplane:
    """
    One node's backplane on Redis.

    @param address: a Twisted client endpoint string or a URL, see
        L{endpoint_from}.
    @param node: this node's name, unique in the cluster, without C{:}.
    @param prefix: put before every key and the channel.
    @param window: how many batches the stream keeps.
    @param queue_max: how many batches may wait for Redis.
    @param clock: the reactor's clock (a L{Clock} in unit tests).
    @param reply_timeout: seconds a command may take before the connection
        is given up and made again.
    @param retry: seconds to wait before the n-th attempt to connect again.
    """

    def __init__(
        self,
        address: str,
        node: str,
        timers: Timers | None = None,
        *,
        prefix: str = "chat:",
        window: int = WINDOW,
        queue_max: int = 10_000,
        clock: IReactorTime | None = None,
        reply_timeout: float | None = None,
        retry: Callable[[int], float] | None = None,
    ) -> None:
        if not node or ":" in node or any(c.isspace() for c in node):
            raise ValueError(
                f"A node's name may not be empty or hold ':' or spaces: {node!r}"
            )
        self.address = endpoint_from(address)
        self.node = node
        self.epoch = ""
        self.timers = Timers() if timers is None else timers
        self.stats = BackplaneStats()
        self.prefix = prefix
        self.channel = prefix + "log"
        self.window = window
        self.listener: Listener | None = None
        self._clock: IReactorTime = clock if clock is not None else default_reactor
        self._reply_timeout = (
            reply_timeout
            if reply_timeout is not None
            else max(1.0, min(5.0, self.timers.fence_after / 2))
        )
        self._retry = retry or backoffPolicy(
            initialDelay=0.1,
            maxDelay=2.0,
            factor=2.0,
            jitter=lambda: random.uniform(0, 0.1),
        )
        self._run_id = secrets.token_hex(6)
        self._order = InOrder(self._deliver, self._fetch, self._missed, self.stats)
        self._services: list[ClientService] = []
        self._conn: Commands | None = None
        self._connections = 0
        self._subscriber: _Subscriber | None = None
        self._subscriptions = 0
        self._first_subscription: Deferred[None] = Deferred()
        self._started = False
        self._stopping = False
        self._stopped = False
        # Publishing
        self._queue: deque[_Out] = deque()
        self._queue_max = queue_max
        self._next_n = 1
        self._in_flight = 0
        self._pipeline = 0
        self._paused = True
        self._eval_next = False
        self._failures = 0
        self._dropped = 0
        self._drained: list[Deferred[None]] = []
        # The last sequence number a batch of this node was given in this
        # epoch, and what stop() waits on until it has come back.
        self._appended = 0
        self._heard: Deferred[None] | None = None
        self._retry_call: IDelayedCall | None = None
        # Claims, liveness
        self._held: dict[str, str] = {}
        # Claims asked for while Redis was away: made once it is back.
        self._parked: list[Callable[[], None]] = []
        self._beating = False
        self._beat_again = False
        self._silent = 0
        self._renewing = False
        self._reaping: set[str] = set()
        self._reached = 0.0
        self._fenced = False
        self._lag_mark = 0
        self._beat = LoopingCall(self._tick)
        self._beat.clock = self._clock
        self._renew = LoopingCall(self._renew_claims)
        self._renew.clock = self._clock

    # Keys

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _claim_key(self, key: str) -> str:
        return self.prefix + "claim:" + key

    def _claims_set(self, node: str) -> str:
        return f"{self.prefix}node:{node}:claims"

    def _value(self, holder: str) -> str:
        return f"{self.node}:{holder}"

    # Backplane

    def start(self, listener: Listener) -> Deferred[None]:
        return Deferred.fromCoroutine(self._start(listener))

    async def _start(self, listener: Listener) -> None:
        self.listener = listener
        self._reached = self._clock.seconds()
        commands = self._service(txredisapi.RedisProtocol, self._prepare)
        await commands.whenConnected()
        while not await self._heartbeat():
            await deferLater(self._clock, self.timers.heartbeat, lambda: None)
            await commands.whenConnected()
        self._service(_Subscriber, None)
        await self._first_subscription
        self._run(listener)

    def _run(self, listener: Listener) -> None:
        """Begin beating and renewing (and let the queue go out)."""
        self.listener = listener
        self._started = True
        self._reached = self._clock.seconds()
        self._beat.start(self.timers.heartbeat, now=self.epoch == "")
        self._renew.start(self.timers.renew_every, now=False)
        self._pump()

    def _service(
        self,
        protocol: Callable[..., Any],
        prepare: Callable[[Any], Deferred[None]] | None,
    ) -> ClientService:
        factory = _ProtocolFactory(protocol, self.address, self._reply_timeout, self)
        service = ClientService(
            clientFromString(default_reactor, self.address.endpoint),
            factory,
            retryPolicy=self._retry,
            clock=self._clock,
            prepareConnection=prepare,
        )
        service.startService()
        self._services.append(service)
        return service

    def stop(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._stop_loops()
        if self._conn is not None and self._queue:
            d: Deferred[None] = Deferred()
            self._drained.append(d)
            d.addTimeout(self._reply_timeout, self._clock)
            try:
                await d
            except Exception:
                log.warn(
                    "Stopping with {count} batches not appended to the cluster log",
                    count=len(self._queue),
                )
        if self._conn is not None and self._order.last < self._appended:
            # This node's own last batches are applied here too before it
            # goes: their lines reach its users, and its history (which
            # records what is applied), as everyone else's did.
            heard = self._heard = Deferred()
            heard.addTimeout(self._reply_timeout, self._clock)
            self._order.catch_up()
            try:
                await heard
            except Exception:
                log.warn(
                    "Stopping before the cluster log gave back this node's "
                    "batches up to {seq}",
                    seq=self._appended,
                )
            self._heard = None
        self._stopped = True
        self._unpark()
        if self._conn is not None:
            args: list[object] = [self.node]
            for key, holder in self._held.items():
                args += [self._claim_key(key), self._value(holder)]
            try:
                await self._eval(
                    LEAVE,
                    [
                        self._key("nodes"),
                        self._claims_set(self.node),
                        self._key("sent"),
                    ],
                    args,
                    timeout=self._reply_timeout,
                )
            except Exception as e:
                log.warn("Could not leave the cluster cleanly: {error}", error=e)
        self._held.clear()
        await self._disconnect()

    def crash(self) -> Deferred[None]:
        """
        Die as a killed process does, for tests: stop beating and renewing
        and disconnect, giving nothing up; the others find out by the
        silence.
        """
        self._stopping = self._stopped = True
        self._stop_loops()
        return Deferred.fromCoroutine(self._disconnect())

    def _stop_loops(self) -> None:
        for loop in (self._beat, self._renew):
            if loop.running:
                loop.stop()
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()

    async def _disconnect(self) -> None:
        services, self._services = self._services, []
        self._conn = None
        await gatherResults([s.stopService() for s in services])

    def publish(self, data: bytes) -> None:
        if self._stopped:
            log.warn("A batch published after the backplane stopped is dropped")
            return
        if len(self._queue) >= self._queue_max:
            self.stats.dropped += 1
            self._dropped += 1
            if self._dropped == 1:
                log.warn(
                    "The queue of batches waiting for Redis is full ({max}): "
                    "dropping batches",
                    max=self._queue_max,
                )
            return
        self._queue.append(_Out(self._next_n, data))
        self._next_n += 1
        self._pump()

    def waiting(self) -> int:
        return len(self._queue)

    def claim(self, key: str, holder: str, force: bool = False) -> Deferred[bool]:
        """
        Claim C{key} for C{holder}. While Redis is away (before the first
        connection, or in a blip), the claim waits for it, at most until
        the node would fence itself: a newcomer waits a moment rather than
        lose its name to a hiccup.
        """
        if self._stopped:
            return succeed(False)
        if self._conn is None:
            return self._park(key, holder, force)
        value = self._value(holder)
        d = self._eval(
            CLAIM,
            [self._claim_key(key), self._claims_set(self.node)],
            [value, self._ms(self.timers.lease), 1 if force else 0, self._set_ms()],
            timeout=self._reply_timeout,
        )

        def claimed(reply: object) -> bool:
            if reply == 1:
                self._held[key] = holder
                return True
            return False

        def failed(failure: Failure) -> bool:
            log.warn(
                "Could not claim {key}: {error}",
                key=key,
                error=failure.getErrorMessage(),
            )
            return False

        return d.addCallbacks(claimed, failed)

    def _park(self, key: str, holder: str, force: bool) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()

        def again() -> None:
            if not d.called:
                self.claim(key, holder, force).chainDeferred(d)

        self._parked.append(again)

        def gave_up(failure: Failure) -> bool:
            log.info("Could not claim {key}: Redis is away", key=key)
            return False

        d.addTimeout(self.timers.fence_after, self._clock)
        d.addErrback(gave_up)
        return d

    def _unpark(self) -> None:
        parked, self._parked = self._parked, []
        for again in parked:
            again()

    def release(self, key: str, holder: str) -> None:
        """
        Give up C{key} if C{holder} holds it. (A release sent while the
        claim is still on its way frees the key in Redis, after the claim; the
        claim's answer then records it here, and the next renewal reports it
        lost.)
        """
        if self._held.get(key) == holder:
            del self._held[key]
        if self._conn is None or self._stopped:
            return
        d = self._eval(
            RELEASE,
            [self._claim_key(key), self._claims_set(self.node)],
            [self._value(holder)],
        )
        d.addErrback(
            lambda f: log.warn(
                "Could not release {key}: {error}", key=key, error=f.getErrorMessage()
            )
        )

    def live_nodes(self) -> Deferred[list[str]]:
        """The nodes beating now; without Redis, those of the last beat."""
        d = self._eval(
            LIVE,
            [self._key("nodes")],
            [self._ms(self.timers.dead_after)],
            timeout=self._reply_timeout,
        )

        def failed(failure: Failure) -> list[str]:
            log.info(
                "Could not read the live nodes, answering those of the last "
                "heartbeat: {error}",
                error=failure.getErrorMessage(),
            )
            return sorted(self.stats.nodes)

        return d.addCallbacks(lambda names: sorted(_text(n) for n in names), failed)

    # Commands

    def _prepare(self, conn: Any) -> Deferred[None]:
        """
        A new command connection (ClientService's prepareConnection): load
        the scripts, then use it.
        """
        return Deferred.fromCoroutine(self._prepare_connection(conn))

    async def _prepare_connection(self, conn: Any) -> None:
        conn.whenDisconnected().addCallback(self._lost)
        await conn.whenConnected()
        await gatherResults(
            [conn.execute_command("SCRIPT", "LOAD", s.source) for s in SCRIPTS]
        )
        if not conn.connected:
            raise txredisapi.ConnectionError("Lost connection")
        self._attach(conn)

    def _attach(self, conn: Commands) -> None:
        """Commands go over C{conn} from now on."""
        self._conn = conn
        if self._parked:
            self._unpark()
        self._connections += 1
        if self._connections > 1:
            self.stats.reconnects += 1
            log.info("Connected to Redis again")
        if self._started:
            # Check the epoch first; the queue goes out after it.
            self._kick_heartbeat()
            self._order.catch_up()

    def _lost(self, conn: object) -> None:
        if self._conn is not conn:
            return
        self._conn = None
        self._restart_pipeline()
        self._paused = True
        if not self._stopped:
            log.info("Lost the command connection to Redis")

    def _call(self, *args: object) -> Deferred[Any]:
        conn = self._conn
        if conn is None:
            return fail(txredisapi.ConnectionError("Not connected to Redis"))
        try:
            return conn.execute_command(*args)
        except Exception:
            return fail()

    def _eval(
        self,
        script: Script,
        keys: Sequence[object],
        args: Sequence[object],
        timeout: float | None = None,
    ) -> Deferred[Any]:
        """
        Run C{script} by its SHA1, by its source if Redis lost it; fail after
        C{timeout} seconds.
        """
        d = self._call("EVALSHA", script.sha, len(keys), *keys, *args)

        def again(failure: Failure) -> Deferred[Any] | Failure:
            if _is_noscript(failure):
                return self._call("EVAL", script.source, len(keys), *keys, *args)
            return failure

        d.addErrback(again)
        if timeout is not None:
            d.addTimeout(timeout, self._clock)
        return d

    @staticmethod
    def _ms(seconds: float) -> int:
        return max(1, round(seconds * 1000))

    def _set_ms(self) -> int:
        """How long a node's claims set outlives its last renewal."""
        return self._ms(2 * self.timers.lease + self.timers.dead_after)

    # Publishing

    def _pump(self) -> None:
        """Send what waits and is not on its way yet, in order."""
        # An answer may come at once and change all this: asked each time.
        while self._in_flight < len(self._queue) and self._may_send():
            out = self._queue[self._in_flight]
            keys = [
                self._key("epoch"),
                self._key("seq"),
                self._key("log"),
                self._key("sent"),
            ]
            args = [
                self.epoch,
                self.node,
                self._run_id,
                out.n,
                self._queue[0].n,
                out.data,
                self.window,
                self.channel,
            ]
            if self._eval_next:
                self._eval_next = False
                d = self._call("EVAL", PUBLISH.source, len(keys), *keys, *args)
            else:
                d = self._call("EVALSHA", PUBLISH.sha, len(keys), *keys, *args)
            self._in_flight += 1
            d.addBoth(self._published, out, self._pipeline)

    def _may_send(self) -> bool:
        return (
            self._conn is not None
            and self._started
            and not self._paused
            # Redis refused a batch: not before the retry.
            and (self._retry_call is None or not self._retry_call.active())
        )

    def _restart_pipeline(self) -> None:
        """Forget the answers still to come: the queue goes out again."""
        self._pipeline += 1
        self._in_flight = 0

    def _published(self, reply: object, out: _Out, pipeline: int) -> None:
        try:
            self._handle_published(reply, out, pipeline)
        except Exception:
            log.failure("Handling a reply to a publish failed")

    def _handle_published(self, reply: object, out: _Out, pipeline: int) -> None:
        if pipeline != self._pipeline:
            # Sent before the pipeline started over; sent again since (the
            # script knows a batch appended already).
            return
        if isinstance(reply, Failure):
            self._restart_pipeline()
            if _is_noscript(reply):
                self._eval_next = True
                self._pump()
            elif reply.check(txredisapi.ConnectionError):
                # The connection is going; the next one sends again.
                log.info(
                    "Publishing to Redis failed: {error}",
                    error=reply.getErrorMessage(),
                )
            else:
                self._publish_failed(reply)
            return
        if reply == -1:
            # The epoch is over: take in the new one, then send again.
            self._restart_pipeline()
            self._paused = True
            self._kick_heartbeat()
            return
        if reply == -2:
            # An earlier batch is missing (its EVALSHA failed): from the top.
            self._restart_pipeline()
            self._pump()
            return
        if not isinstance(reply, int) or reply < 0:
            self._restart_pipeline()
            self._publish_failed(Failure(ValueError(f"Unexpected reply {reply!r}")))
            return
        if not self._queue or self._queue[0] is not out:
            log.error("A publish was answered out of order; sending again")
            self._restart_pipeline()
            self._pump()
            return
        self._queue.popleft()
        self._in_flight -= 1
        self._failures = 0
        # 0: appended before, its number unknown; delivered already then.
        self._appended = max(self._appended, reply)
        self.stats.published += 1
        if not self._queue:
            self._emptied()

    def _publish_failed(self, failure: Failure) -> None:
        """
        Redis refused the script (out of memory, loading, busy): try the
        batch again a few times, a heartbeat apart, then drop it.
        """
        self._failures += 1
        if self._failures >= 5 and self._queue:
            out = self._queue.popleft()
            self._failures = 0
            self.stats.dropped += 1
            log.error(
                "Dropped a batch of {size} bytes that Redis refused 5 times: {error}",
                size=len(out.data),
                error=failure.getErrorMessage(),
            )
            if not self._queue:
                self._emptied()
            self._pump()
            return
        log.warn(
            "Redis refused a batch; trying again: {error}",
            error=failure.getErrorMessage(),
        )
        if self._retry_call is None or not self._retry_call.active():
            self._retry_call = self._clock.callLater(self.timers.heartbeat, self._pump)

    def _emptied(self) -> None:
        if self._dropped:
            log.warn(
                "Dropped {count} batches while the queue for Redis was full",
                count=self._dropped,
            )
            self._dropped = 0
        drained, self._drained = self._drained, []
        for d in drained:
            if not d.called:  # stop() may have stopped waiting
                d.callback(None)
        if self.listener is not None and not self._stopping:
            self.listener.drained()

    # Receiving

    def _subscribed(self, subscriber: _Subscriber) -> None:
        self._subscriber = subscriber
        self._subscriptions += 1
        if self._subscriptions == 1:
            self._first_subscription.callback(None)
        else:
            self.stats.reconnects += 1
            log.info("Subscribed to the cluster log again")
        # Whatever was published while there was no subscription.
        self._order.catch_up()

    def _unsubscribed(self, subscriber: _Subscriber) -> None:
        if self._subscriber is subscriber:
            self._subscriber = None
            if not self._stopped:
                log.info("Lost the subscription to the cluster log")

    def _message(self, message: bytes) -> None:
        if self._stopped:
            return
        try:
            epoch, seq, node, data = message.split(b":", 3)
            batch = Batch(epoch.decode("ascii"), int(seq), node.decode(), data)
        except (ValueError, UnicodeDecodeError):
            log.warn(
                "Not a batch of the cluster log: {message!r}", message=message[:80]
            )
            return
        if batch.epoch != self.epoch:
            # A new epoch: notice it now rather than at the next beat.
            self._kick_heartbeat()
        self._order.offer(batch)

    def _fetch(self, epoch: str, after: int) -> Deferred[list[Batch]]:
        d = self._eval(
            FETCH,
            [self._key("epoch"), self._key("log")],
            [epoch, after],
            timeout=self._reply_timeout,
        )

        def read(reply: list[Any]) -> list[Batch]:
            current = _text(reply[0])
            if current != epoch:
                self._kick_heartbeat()
                raise _EpochChanged(f"the epoch is {current!r} now, not {epoch!r}")
            batches = []
            for entry_id, fields in reply[1]:
                values = dict(zip(fields[::2], fields[1::2], strict=True))
                seq = int(bytes(entry_id).split(b"-")[0])
                batches.append(
                    Batch(epoch, seq, _text(values[b"node"]), bytes(values[b"data"]))
                )
            return batches

        return d.addCallback(read)

    def _deliver(self, batch: Batch) -> None:
        assert self.listener is not None
        try:
            self.listener.batch(batch)
        finally:
            self._check_heard()

    def _missed(self, count: int) -> None:
        self._tell(lambda listener: listener.missed(count), "missed")
        self._check_heard()

    def _check_heard(self) -> None:
        """Fire what stop() waits on once its last batch has come back."""
        heard = self._heard
        if heard is not None and self._order.last >= self._appended:
            self._heard = None

            def fire() -> None:
                if not heard.called:  # stop() may have stopped waiting
                    heard.callback(None)

            # Once the batch being handed on is done with.
            self._clock.callLater(0, fire)

    def _tell(self, call: Callable[[Listener], None], what: str) -> None:
        if self.listener is None:
            return
        try:
            call(self.listener)
        except Exception:
            log.failure("The cluster's listener failed in {what}", what=what)

    # Liveness

    def _tick(self) -> None:
        """Every heartbeat: fence if cut off too long, and beat."""
        if (
            not self._fenced
            and self._clock.seconds() - self._reached > self.timers.fence_after
        ):
            self._fence()
        self._kick_heartbeat()

    def _kick_heartbeat(self) -> None:
        if not self._started or self._stopped:
            return
        if self._beating:
            self._beat_again = True
            return
        d = Deferred.fromCoroutine(self._heartbeat())
        d.addErrback(lambda f: log.failure("The heartbeat failed", f))

    async def _heartbeat(self) -> bool:
        """
        Beat, and act on what Redis says: the epoch, the live nodes, the
        dead ones. True if Redis answered.
        """
        self._beating = True
        sent = self._clock.seconds()
        try:
            reply = await self._eval(
                HEARTBEAT,
                [
                    self._key("epoch"),
                    self._key("seq"),
                    self._key("nodes"),
                    self._key("reap:" + self.node),
                ],
                [self.node, secrets.token_hex(8), self._ms(self.timers.dead_after)],
                timeout=self._reply_timeout,
            )
        except Exception as e:
            self._beating = False
            self._silent += 1
            if self._silent == 1 and not self._stopped:
                log.info("Redis does not answer the heartbeat: {error}", error=e)
            return False
        self._beating = False
        if self._stopped:
            return False
        if self._silent:
            log.info(
                "Redis answers the heartbeat again, after {count} failed",
                count=self._silent,
            )
            self._silent = 0
        now = self._clock.seconds()
        self.stats.round_trip = now - sent
        # Redis heard from this node when it ran the script, sometime after
        # it was sent: after a pause (SIGSTOP) the answer may come long
        # after, and must not hide that the node was away.
        self._reached = max(self._reached, sent)
        self._fenced = False
        epoch, seq = _text(reply[0]), int(reply[1])
        self.stats.nodes = {_text(n) for n in reply[2]}
        self._adopt(epoch, seq)
        self._paused = False
        if self._started:
            self._pump()
            # Silent loss (a subscription that is there but delivers
            # nothing): what was in the log a beat ago should be here now.
            if epoch == self.epoch and self._order.last < self._lag_mark:
                self._order.catch_up()
            self._lag_mark = seq
            # Only a node that has been beating all along judges the others:
            # one whose own last beat is as old (it was paused, or Redis
            # was, or the whole machine) would reap nodes that only could
            # not beat either, before their beats, queued meanwhile, land.
            if reply[4] == 1:
                for node in (_text(n) for n in reply[3]):
                    if node != self.node:
                        self._reap(node)
        if self._beat_again:
            self._beat_again = False
            self._kick_heartbeat()
        return True

    def _adopt(self, epoch: str, seq: int) -> None:
        """The epoch Redis has: begin it, or take in a new one."""
        if epoch == self.epoch:
            return
        if not self.epoch:
            self.epoch = epoch
            self._order.begin(epoch, seq)
            self._lag_mark = seq
            return
        log.warn(
            "Redis lost its data: the cluster log begins anew, epoch {new} after {old}",
            new=epoch,
            old=self.epoch,
        )
        self.epoch = epoch
        self.stats.resets += 1
        self._lag_mark = 0
        self._appended = 0
        self._restart_pipeline()
        self._order.begin(epoch, 0)
        # What the listener publishes to assert itself again goes first,
        # then what was waiting; numbered anew in that order.
        waiting = list(self._queue)
        self._queue.clear()
        self._tell(lambda listener: listener.reset(epoch), "reset")
        self._queue.extend(waiting)
        for out in self._queue:
            out.n = self._next_n
            self._next_n += 1
        self._order.catch_up()

    def _reap(self, node: str) -> None:
        if node in self._reaping:
            return
        self._reaping.add(node)
        d = self._eval(
            REAP,
            [
                self._key("reap:" + node),
                self._key("nodes"),
                self._claims_set(node),
                self._key("sent"),
            ],
            [self.node, node, self._ms(self.timers.dead_after), REAP_MS],
            timeout=self._reply_timeout,
        )

        def reaped(reply: object) -> None:
            self._reaping.discard(node)
            if reply == 1:
                log.info("Node {node} stopped beating: its claims are freed", node=node)
                self._tell(lambda listener: listener.node_lost(node), "node_lost")

        def failed(failure: Failure) -> None:
            self._reaping.discard(node)
            log.info(
                "Could not reap node {node}: {error}",
                node=node,
                error=failure.getErrorMessage(),
            )

        d.addCallbacks(reaped, failed)

    # Claims

    def _renew_claims(self) -> None:
        if self._renewing or self._stopped:
            return
        self._renewing = True
        held = list(self._held.items())
        sent = self._clock.seconds()
        args: list[object] = [self._ms(self.timers.lease), self._set_ms()]
        for key, holder in held:
            args += [self._claim_key(key), self._value(holder)]
        d = self._eval(
            RENEW, [self._claims_set(self.node)], args, timeout=self._reply_timeout
        )
        d.addCallbacks(
            lambda reply: self._renewed(held, sent, reply), self._renewal_failed
        )

    def _renewed(
        self, held: list[tuple[str, str]], sent: float, reply: list[bytes]
    ) -> None:
        self._renewing = False
        self._reached = max(self._reached, sent)
        self.stats.renewals += 1
        gone = {_text(k) for k in reply}
        lost = []
        for key, holder in held:
            if self._claim_key(key) in gone and self._held.get(key) == holder:
                del self._held[key]
                lost.append(key)
        if lost:
            self.stats.claims_lost += len(lost)
            log.info("Claims lost: {keys}", keys=lost)
            self._tell(lambda listener: listener.claims_lost(lost), "claims_lost")

    def _renewal_failed(self, failure: Failure) -> None:
        self._renewing = False
        if not self._stopped:
            log.info("Could not renew claims: {error}", error=failure.getErrorMessage())

    def _fence(self) -> None:
        """
        Cut off for longer than the lease allows: others may hold this
        node's names by now. Once per outage.
        """
        self._fenced = True
        log.warn(
            "No answer from Redis for {seconds:.1f} s: fencing this node "
            "(forgetting {count} claims)",
            seconds=self._clock.seconds() - self._reached,
            count=len(self._held),
        )
        self._held.clear()
        self._tell(lambda listener: listener.fenced(), "fenced")
