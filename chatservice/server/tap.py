"""
The C{twistd chat} plugin's options and service.
"""

from __future__ import annotations

import ipaddress
import resource
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any, cast

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet import endpoints
from twisted.internet.defer import (
    Deferred,
    ensureDeferred,
    gatherResults,
    maybeDeferred,
)
from twisted.internet.interfaces import IListeningPort, IReactorThreads
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.components import Componentized

from chatservice.core.accounts import Account, Accounts
from chatservice.core.chat import Chat
from chatservice.core.history import DEFAULT_REPLAY, HISTORY_MAX, History
from chatservice.core.stats import Stats
from chatservice.frontends.admission import Admission
from chatservice.frontends.limits import Limits
from chatservice.frontends.line.protocol import LineFactory
from chatservice.server.logs import json_observer_for
from chatservice.server.motd import MotdError, read_motd
from chatservice.server.tls import ReloadableCertificate
from chatservice.storage.database import Database, DatabaseError, check

DEFAULT_PORT = "tcp:12345:interface=127.0.0.1"
DEFAULT_SHUTDOWN_GRACE = 5.0
LOG_FORMATS = ("text", "json")

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
            "log-format",
            None,
            "text",
            "text, or json for one JSON object per line (for log shippers), "
            "written where twistd logs.",
        ],
        [
            "shutdown-grace",
            None,
            DEFAULT_SHUTDOWN_GRACE,
            "On SIGTERM or SIGINT, seconds clients have to take their last "
            "lines before their connections are aborted.",
            _non_negative,
        ],
        [
            "motd",
            None,
            None,
            "Show the text FILE (the message of the day) to every client after "
            "the welcome; re-read on SIGHUP.",
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
        self["metrics"] = None

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

    def opt_metrics(self, description: str) -> None:
        from twisted.internet import reactor

        try:
            endpoints.serverFromString(reactor, description)
        except Exception as e:
            raise usage.UsageError(f"--metrics {description}: {e}") from None
        self["metrics"] = description

    opt_metrics.__doc__ = (
        "Serve Prometheus metrics at /metrics on ENDPOINT, a server endpoint "
        "string such as tcp:9122:interface=127.0.0.1; off unless given. Keep "
        "it away from the public: it is plain HTTP."
    )

    def postOptions(self) -> None:
        if not self["port"]:
            self["port"] = [DEFAULT_PORT]
        if self["motd"] is not None:
            # Like the database, a bad file stops the server with one line,
            # not the whole usage text.
            try:
                self["motd-lines"] = read_motd(self["motd"])
            except MotdError as e:
                raise SystemExit(f"twistd chat: --motd: {e}") from None
        if self["log-format"] not in LOG_FORMATS:
            raise usage.UsageError(
                f"--log-format must be one of {', '.join(LOG_FORMATS)}, "
                f"not {self['log-format']!r}"
            )


class ChatListener(StreamServerEndpointService):
    """
    A listening endpoint that logs the address it got, so that a port chosen
    by the kernel (C{tcp:0}) can be found in the log.
    """

    what = "Chat"

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        assert self._waitingForPort is not None
        self._waitingForPort.addCallback(self._listening)

    def _listening(self, port: IListeningPort | None) -> IListeningPort | None:
        if port is not None:
            log.info(
                "{what} server listening on {address}",
                what=self.what,
                address=port.getHost(),
            )
        return port


class MetricsListener(ChatListener):
    what = "Metrics"


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
    arrives; the chat stops reading input, delivers what was said, tells
    every client the server is going and waits (at most C{grace} seconds)
    for them to take their last lines; then the database writes what was
    relayed and closes. twistd runs this before the reactor shuts down and
    waits for it.

    With C{handle_signals}, once the reactor runs, SIGTERM and SIGINT stop
    the reactor (so twistd exits 0 after that orderly stop, rather than
    re-raising the signal), and SIGHUP re-reads the TLS certificates and
    the message of the day.
    """

    chat: Chat | None = None
    admission: Admission | None = None
    database: Database | None = None
    grace: float = DEFAULT_SHUTDOWN_GRACE
    handle_signals = False
    # What SIGHUP re-reads.
    certificates: list[ReloadableCertificate]
    motd_path: str | None = None
    # Replaces twistd's log observer (--log-format json).
    log_observer: Callable[[Any], None] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.certificates = []
        self._previous_handlers: dict[int, Any] = {}
        self._stopping = False

    def setServiceParent(self, parent: Any) -> None:
        # twistd asks the application for an ILogObserver before it starts
        # logging, and makes the application just before that.
        if self.log_observer is not None and isinstance(parent, Componentized):
            from twisted.logger import ILogObserver

            parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)

    def privilegedStartService(self) -> None:
        if self.handle_signals:
            # Before the listeners: from the moment the server is reachable,
            # a SIGHUP must reload rather than kill it.
            self._install_signal_handlers()
        super().privilegedStartService()

    def startService(self) -> None:
        limit = raise_open_files_limit()
        log.info("Open files limit: {limit}", limit=limit)
        super().startService()
        if self.handle_signals:
            from twisted.internet import reactor

            # Again once the reactor has installed its own handlers for
            # SIGTERM and SIGINT, which these replace.
            reactor.callWhenRunning(self._install_signal_handlers)

    # Signals

    def _install_signal_handlers(self) -> None:
        handlers = {
            signal.SIGTERM: self._stop_signal,
            signal.SIGINT: self._stop_signal,
            signal.SIGHUP: self._reload_signal,
        }
        for number, handler in handlers.items():
            previous = signal.signal(number, handler)
            self._previous_handlers.setdefault(number, previous)

    def _restore_signal_handlers(self) -> None:
        for number, handler in self._previous_handlers.items():
            signal.signal(number, handler)
        self._previous_handlers.clear()

    def _stop_signal(self, number: int, frame: FrameType | None) -> None:
        from twisted.internet import reactor

        cast(IReactorThreads, reactor).callFromThread(
            self._stop_reactor, signal.Signals(number).name
        )

    def _stop_reactor(self, name: str) -> None:
        from twisted.internet import reactor

        if self._stopping:
            log.info("Received {signal}; already shutting down", signal=name)
            return
        self._stopping = True
        log.info("Received {signal}; shutting down", signal=name)
        reactor.stop()

    def _reload_signal(self, number: int, frame: FrameType | None) -> None:
        from twisted.internet import reactor

        cast(IReactorThreads, reactor).callFromThread(self.reload)

    def reload(self) -> Deferred[None]:
        """
        Re-read the TLS certificates and the message of the day; whatever
        fails to load is logged and the old one kept.
        """
        log.info("Received SIGHUP; reloading certificates and the MOTD")
        work: list[Deferred[Any]] = [c.reload() for c in self.certificates]
        if self.motd_path is not None:
            work.append(self._reload_motd(self.motd_path))
        return gatherResults(work).addCallback(lambda _: None)

    def _reload_motd(self, path: str) -> Deferred[None]:
        def loaded(lines: list[str]) -> None:
            if self.chat is not None:
                self.chat.motd = lines
            log.info("Reloaded the MOTD from {path}", path=path)

        def failed(failure: Any) -> None:
            failure.trap(MotdError)
            log.error(
                "Could not reload the MOTD; the old one stays: {error}",
                error=failure.getErrorMessage(),
            )

        return deferToThread(read_motd, path).addCallbacks(loaded, failed)

    # Stopping

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        others = [s for s in self if s is not self.database]
        await gatherResults([maybeDeferred(s.stopService) for s in others])
        if self.chat is not None and self.admission is not None:
            await self.admission.shut_down(self.chat, self.grace)
        if self.database is not None:
            await self.database.stopService()
        self._restore_signal_handlers()


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
    The composition root: one chat core (rooms, accounts, history), handed to
    every front end's factory, behind every listening endpoint.
    """
    from twisted.internet import reactor

    service = ChatService()
    service.handle_signals = True
    service.grace = options["shutdown-grace"]
    if options["log-format"] == "json":
        service.log_observer = json_observer_for(options.parent or {})
    path = options["database"]
    try:
        check(path)
    except DatabaseError as e:
        raise SystemExit(f"twistd chat: {e}") from None
    history = None if options["no-history"] else History(persist=True)
    stats = Stats()
    # Filled from the database when it starts; the chat and the accounts
    # share it.
    registered: dict[str, Account] = {}
    chat = Chat(
        schedule=lambda flush: reactor.callLater(0, flush),
        history=history,
        replay=options["history-replay"],
        stats=stats,
        registered=registered,
        motd=options.get("motd-lines", ()),
    )
    if options["motd"] is not None:
        service.motd_path = options["motd"]
    database = Database(
        path,
        history if history is not None else History(),
        registered,
        reactor,
        max_per_room=options["history-max-per-room"],
        days=options["history-days"],
        stats=stats,
    )
    database.setServiceParent(service)
    accounts = Accounts(
        chat,
        in_thread=lambda f, *args: deferToThread(f, *args),
        save=lambda *account: database.run(database.store.save_account, *account),
        clock=reactor.seconds,
        accounts=registered,
    )
    admission = Admission(limits_from(options), stats, reactor)
    factory = LineFactory(chat, admission, accounts)
    service.chat = chat
    service.admission = admission
    service.database = database
    for description in options["port"]:
        endpoint = endpoints.serverFromString(reactor, description)
        certificate = ReloadableCertificate.install(reactor, endpoint, description)
        if certificate is not None:
            service.certificates.append(certificate)
        listen(service, ChatListener(endpoint, factory))
    if options["metrics"] is not None:
        from chatservice.server.metrics import metrics_site

        site = metrics_site(factory, reactor)
        endpoint = endpoints.serverFromString(reactor, options["metrics"])
        listen(service, MetricsListener(endpoint, site))
    return service


def listen(service: ChatService, listener: StreamServerEndpointService) -> None:
    # Let twistd report a port that cannot be bound and exit, rather than
    # run without it.
    listener._raiseSynchronously = True
    listener.setServiceParent(service)
