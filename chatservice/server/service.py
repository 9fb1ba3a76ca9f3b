"""
The running server as twistd sees it: L{ChatService}, the parent of the
listeners and the database, with the process-wide work (signals, SIGHUP's
reload, the open files limit, the ordered stop), and L{Listener}, one
listening endpoint.
"""

from __future__ import annotations

import resource
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, cast

from twisted.application.service import MultiService, Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    ensureDeferred,
    gatherResults,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorThreads,
    IStreamServerEndpoint,
)
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.components import Componentized
from twisted.python.failure import Failure

from chatservice.core.chat import Chat
from chatservice.core.server_operators import ServerOperators
from chatservice.frontends.admission import Admission
from chatservice.server.motd import MotdError, read_motd
from chatservice.server.operators_file import OperatorsFileError, read_operators
from chatservice.server.options import DEFAULT_SHUTDOWN_GRACE
from chatservice.server.tls import ReloadableCertificate
from chatservice.storage.database import Database

log = Logger()


class Listener(Service):
    """
    One listening endpoint, which logs the address it got when it starts,
    so that a port chosen by the kernel (C{tcp:0}) can be found in the log.

    It listens when it starts, or earlier when told to (L{bind}): twistd
    binds the server's ports before it daemonizes, so that a port that
    cannot be had is reported on the operator's terminal
    (L{chatservice.server.tap}). Either way the address is logged when the
    service starts, once the signal handlers are in place: scripts wait for
    that line before they send SIGHUP.

    @ivar what: what it serves, for the log: C{Chat}, C{Metrics}.
    @ivar source: where it comes from, for errors: the option and its value.
    """

    def __init__(
        self,
        what: str,
        source: str,
        endpoint: IStreamServerEndpoint,
        factory: IProtocolFactory,
    ) -> None:
        self.what = what
        self.source = source
        self.endpoint = endpoint
        self.factory = factory
        # Fires with the listening port, or None if listening failed later.
        self._port: Deferred[IListeningPort | None] | None = None
        self._announced = False

    def bind(self) -> None:
        """
        Listen, if not listening already. An endpoint that listens at once
        (C{tcp:}, C{ssl:}, C{unix:} do) raises here why it cannot; for one
        that takes its time, a failure is logged when it comes.
        """
        if self._port is not None:
            return
        synchronous = True
        at_once: list[Failure] = []

        def failed(failure: Failure) -> None:
            if synchronous:
                at_once.append(failure)
            elif not failure.check(CancelledError):
                log.failure(
                    "{what} server cannot listen: {source}",
                    failure,
                    what=self.what,
                    source=self.source,
                )

        listening: Deferred[IListeningPort | None] = self.endpoint.listen(
            self.factory
        ).addErrback(failed)
        synchronous = False
        if at_once:
            at_once[0].raiseException()
        self._port = listening

    def _start(self) -> None:
        self.bind()
        if not self._announced:
            self._announced = True
            assert self._port is not None
            self._port.addCallback(self._listening)

    def _listening(self, port: IListeningPort | None) -> IListeningPort | None:
        if port is not None:
            log.info(
                "{what} server listening on {address}",
                what=self.what,
                address=port.getHost(),
            )
        return port

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._start()

    def startService(self) -> None:
        super().startService()
        self._start()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        listening, self._port = self._port, None
        self._announced = False
        if listening is None:
            return succeed(None)
        listening.cancel()

        def stop(port: IListeningPort | None) -> Deferred[None] | None:
            return None if port is None else port.stopListening()

        return listening.addCallback(stop)


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


# Seconds a thread may hold the GIL while another waits for it (Python's
# default is 5 ms). The database thread runs Python while it writes history
# (every 50 ms); a reactor thread woken meanwhile by a line to fan out
# waited for it, which made the tail of fan-out latency (see
# docs/performance.md, "The paced tail").
SWITCH_INTERVAL = 0.0005


def shorten_thread_switches() -> float:
    """
    Let the reactor thread take the GIL back from a worker thread within
    L{SWITCH_INTERVAL}, never later than Python's own default. Returns the
    interval now in force.
    """
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
    return sys.getswitchinterval()


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
    re-raising the signal), and SIGHUP re-reads the TLS certificates, the
    message of the day and the operators file.
    """

    chat: Chat | None = None
    admission: Admission | None = None
    database: Database | None = None
    grace: float = DEFAULT_SHUTDOWN_GRACE
    handle_signals = False
    # What SIGHUP re-reads.
    certificates: list[ReloadableCertificate]
    motd_path: str | None = None
    operators: ServerOperators | None = None
    operators_path: str | None = None
    # Replaces twistd's log observer (--log-format json).
    log_observer: Callable[[Any], None] | None = None

    def __init__(
        self,
        *,
        chat: Chat | None = None,
        admission: Admission | None = None,
        database: Database | None = None,
        grace: float = DEFAULT_SHUTDOWN_GRACE,
        handle_signals: bool = False,
        motd_path: str | None = None,
        log_observer: Callable[[Any], None] | None = None,
        operators: ServerOperators | None = None,
        operators_path: str | None = None,
    ) -> None:
        """
        @param chat: the chat that stopping closes and SIGHUP gives a new
            MOTD; none for a service without one (in tests).
        @param admission: every front end's connections, which stopping
            waits for.
        @param database: stopped last, once the chat has said its last.
        @param grace: seconds clients have to take their last lines.
        @param handle_signals: take SIGTERM, SIGINT and SIGHUP.
        @param motd_path: the file SIGHUP re-reads the MOTD from.
        @param log_observer: replaces twistd's (C{--log-format json}).
        @param operators: the server operators, whose list SIGHUP re-reads
            from C{operators_path}.
        """
        super().__init__()
        self.chat = chat
        self.admission = admission
        self.database = database
        self.grace = grace
        self.handle_signals = handle_signals
        self.motd_path = motd_path
        self.log_observer = log_observer
        self.operators = operators
        self.operators_path = operators_path
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

    def listeners(self) -> list[Listener]:
        return [child for child in self if isinstance(child, Listener)]

    def privilegedStartService(self) -> None:
        if self.handle_signals:
            # Before the listeners: from the moment the server is reachable,
            # a SIGHUP must reload rather than kill it.
            self._install_signal_handlers()
        super().privilegedStartService()

    def startService(self) -> None:
        limit = raise_open_files_limit()
        log.info("Open files limit: {limit}", limit=limit)
        shorten_thread_switches()
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
        Re-read the TLS certificates, the message of the day and the
        operators file; whatever fails to load is logged and the old one
        kept.
        """
        log.info("Received SIGHUP; reloading certificates, the MOTD and the operators")
        work: list[Deferred[Any]] = [c.reload() for c in self.certificates]
        if self.motd_path is not None:
            work.append(self._reload_motd(self.motd_path))
        if self.operators_path is not None and self.operators is not None:
            work.append(self._reload_operators(self.operators, self.operators_path))
        return gatherResults(work).addCallback(lambda _: None)

    def _reload_operators(
        self, operators: ServerOperators, path: str
    ) -> Deferred[None]:
        def loaded(listed: list[str]) -> None:
            operators.set_listed(listed)
            log.info(
                "Reloaded {count} operator account(s) from {path}",
                count=len(listed),
                path=path,
            )

        def failed(failure: Any) -> None:
            failure.trap(OperatorsFileError)
            log.error(
                "Could not reload the operators file; the old list stays: {error}",
                error=failure.getErrorMessage(),
            )

        return deferToThread(read_operators, path).addCallbacks(loaded, failed)

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
