"""
The C{twistd chat} plugin's options and service.
"""

from __future__ import annotations

import ipaddress
import resource
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet import endpoints
from twisted.internet.defer import (
    Deferred,
    ensureDeferred,
    gatherResults,
    maybeDeferred,
)
from twisted.internet.interfaces import IListeningPort
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python import usage

from chatservice.accounts import Account, Accounts
from chatservice.commands import Chat
from chatservice.database import Database, DatabaseError, check
from chatservice.history import DEFAULT_REPLAY, HISTORY_MAX, History
from chatservice.limits import Limits
from chatservice.protocol import ChatFactory

DEFAULT_PORT = "tcp:12345:interface=127.0.0.1"

log = Logger()


def _whole(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"{value} is negative")
    return number


def _replay(value: str) -> int:
    number = _whole(value)
    if number > HISTORY_MAX:
        raise ValueError(f"{value} is more than {HISTORY_MAX}")
    return number


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"{value} is not a positive whole number")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError(f"{value} is not a number of seconds")
    return number


_DEFAULTS = Limits()


class Options(usage.Options):
    synopsis = "[--port ENDPOINT]... [options]"
    longdesc = (
        "Run the chatservice chat server. Clients connect with nc, telnet or "
        "chat-client. Listens on " + DEFAULT_PORT + " unless --port is given. "
        "The wire protocol and every limit are documented in docs/protocol.md."
    )
    optParameters: list[Any] = [
        [
            "max-line",
            None,
            _DEFAULTS.max_line,
            "Longest line, in bytes, a client may send; longer lines are "
            "refused with an error and the connection stays open.",
            _positive,
        ],
        [
            "flood-rate",
            None,
            _DEFAULTS.flood_rate,
            "Lines per second one connection may send on average; faster "
            "lines are delayed. 0 turns flood control off.",
            _non_negative,
        ],
        [
            "flood-burst",
            None,
            _DEFAULTS.flood_burst,
            "Lines one connection may send at once before --flood-rate applies.",
            _positive,
        ],
        [
            "flood-queue",
            None,
            _DEFAULTS.flood_queue,
            "Lines held back for a flooding connection before it is told and "
            "disconnected.",
            _positive,
        ],
        [
            "sendq",
            None,
            _DEFAULTS.sendq,
            "Bytes that may wait for a client that does not read (beyond the "
            "socket's buffer) before it is disconnected.",
            _positive,
        ],
        [
            "max-clients",
            None,
            _DEFAULTS.max_clients,
            "Most connections in all; 0 for no limit.",
            _whole,
        ],
        [
            "max-per-ip",
            None,
            _DEFAULTS.max_per_ip,
            "Most connections from one IP address (an IPv6 /64 counts as one); "
            "0 for no limit.",
            _whole,
        ],
        [
            "database",
            None,
            "chat.sqlite3",
            "SQLite file for room history and accounts, created if missing; "
            ":memory: keeps them only while the server runs.",
        ],
        [
            "history-replay",
            None,
            DEFAULT_REPLAY,
            f"Lines of history replayed to whoever enters a room (at most "
            f"{HISTORY_MAX}).",
            _replay,
        ],
        [
            "history-max-per-room",
            None,
            0,
            "Keep at most this many lines per room on disk; 0 keeps all.",
            _whole,
        ],
        [
            "history-days",
            None,
            0,
            "Keep history for this many days; 0 keeps it for ever.",
            _non_negative,
        ],
        [
            "idle-timeout",
            None,
            _DEFAULTS.idle_timeout,
            "Close connections that send nothing for this many seconds; 0 "
            "(the default) never does.",
            _non_negative,
        ],
    ]

    optFlags = [
        [
            "no-history",
            None,
            "Record no room history at all: nothing is replayed, stored or "
            "shown by /history. Accounts are still kept in the database.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["port"] = []
        self["flood-exempt"] = []

    def opt_flood_exempt(self, network: str) -> None:
        try:
            self["flood-exempt"].append(ipaddress.ip_network(network, strict=False))
        except ValueError as e:
            raise usage.UsageError(f"--flood-exempt {network}: {e}") from None

    opt_flood_exempt.__doc__ = (
        "Leave connections from NETWORK (an address or CIDR block, such as "
        "127.0.0.1 or 2001:db8::/32) out of flood control: trusted bots, "
        "bridges, a benchmark's senders. May be given several times."
    )

    def opt_port(self, description: str) -> None:
        from twisted.internet import reactor

        try:
            endpoints.serverFromString(reactor, description)
        except Exception as e:
            raise usage.UsageError(f"--port {description}: {e}") from None
        self["port"].append(description)

    opt_port.__doc__ = (
        "Listen on ENDPOINT, a Twisted server endpoint string such as "
        "tcp:12345:interface=0.0.0.0, tcp6:12345:interface=\\:\\:1, "
        "unix:/tmp/chat.sock or ssl:6697:privateKey=key.pem:certKey=cert.pem. "
        "May be given several times. [default: " + DEFAULT_PORT + "]"
    )
    opt_p = opt_port

    def postOptions(self) -> None:
        if not self["port"]:
            self["port"] = [DEFAULT_PORT]


class ChatListener(StreamServerEndpointService):
    """
    A listening endpoint that logs the address it got, so that a port chosen
    by the kernel (C{tcp:0}) can be found in the log.
    """

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        assert self._waitingForPort is not None
        self._waitingForPort.addCallback(self._listening)

    def _listening(self, port: IListeningPort | None) -> IListeningPort | None:
        if port is not None:
            log.info("Chat server listening on {address}", address=port.getHost())
        return port


def raise_open_files_limit() -> int:
    """
    Raise the soft limit on open files to the hard limit: each client is a
    file descriptor, and the usual soft limit (1024) is far below what one
    process can serve. Returns the limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            log.warn("Could not raise the open files limit: {error}", error=e)
    return soft


class ChatService(MultiService):
    """
    The listeners and the database, and what the process needs before it
    serves anyone.

    Stopping is ordered: the listeners close first so that nobody new
    arrives, then input stops being read, then the database writes what was
    relayed and closes. twistd runs this before the reactor shuts down and
    waits for it.
    """

    factory: ChatFactory | None = None
    database: Database | None = None

    def startService(self) -> None:
        limit = raise_open_files_limit()
        log.info("Open files limit: {limit}", limit=limit)
        super().startService()

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        others = [s for s in self if s is not self.database]
        await gatherResults([maybeDeferred(s.stopService) for s in others])
        if self.factory is not None:
            self.factory.stop_input()
            self.factory.registry.flush()
        if self.database is not None:
            await self.database.stopService()


def limits_from(options: Options) -> Limits:
    return Limits(
        max_line=options["max-line"],
        flood_rate=options["flood-rate"],
        flood_burst=options["flood-burst"],
        flood_queue=options["flood-queue"],
        sendq=options["sendq"],
        max_clients=options["max-clients"],
        max_per_ip=options["max-per-ip"],
        idle_timeout=options["idle-timeout"],
        flood_exempt=tuple(options["flood-exempt"]),
    )


def makeService(options: Options) -> IService:
    """
    One factory, and so one set of rooms, behind every listening endpoint.
    """
    from twisted.internet import reactor

    service = ChatService()
    path = options["database"]
    try:
        check(path)
    except DatabaseError as e:
        raise SystemExit(f"twistd chat: {e}") from None
    history = None if options["no-history"] else History(persist=True)
    factory = ChatFactory(
        reactor,
        limits_from(options),
        history=history,
        replay=options["history-replay"],
    )
    accounts: dict[str, Account] = {}
    database = Database(
        path,
        history if history is not None else History(),
        accounts,
        reactor,
        max_per_room=options["history-max-per-room"],
        days=options["history-days"],
    )
    database.setServiceParent(service)
    factory.chat = Chat(
        factory.registry,
        Accounts(
            factory.registry,
            in_thread=lambda f, *args: deferToThread(f, *args),
            save=lambda *account: database.run(database.store.save_account, *account),
            clock=reactor.seconds,
            accounts=accounts,
        ),
    )
    service.factory = factory
    service.database = database
    for description in options["port"]:
        listener = ChatListener(
            endpoints.serverFromString(reactor, description), factory
        )
        # Let twistd report a port that cannot be bound and exit, rather
        # than run without it.
        listener._raiseSynchronously = True
        listener.setServiceParent(service)
    return service
