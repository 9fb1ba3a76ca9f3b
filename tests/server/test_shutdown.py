"""
Tests for stopping and reloading the server: L{Registry.close_all},
L{LineFactory.shut_down}, the order in which L{ChatService} stops,
its signal handlers, SIGHUP's reload of the TLS certificates and the message
of the day, L{chatservice.server.motd}, and the options that set all of this up.

Most of it runs in memory on a L{Clock} with fake services and a fake
reactor; the reload of a certificate and one whole stop run on loopback
sockets with the reactor running.
"""

from __future__ import annotations

import io
import json
import resource
import shutil
import signal
import socket
import ssl
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import twisted.internet
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from twisted.application.service import Application, Service
from twisted.internet import endpoints, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ConnectionAborted
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.protocol import Factory
from twisted.internet.ssl import CertificateOptions
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.internet.threads import deferToThread
from twisted.logger import ILogObserver, LogEvent, LogLevel
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.server import Site
from zope.interface.verify import verifyObject

from chatservice.core.chat import Chat
from chatservice.core.events import Closing
from chatservice.core.history import History
from chatservice.core.rooms import Member
from chatservice.frontends.admission import Admission
from chatservice.frontends.limits import Limits
from chatservice.frontends.line import wire
from chatservice.frontends.line.protocol import LineFactory
from chatservice.server import motd, tap
from chatservice.server.options import DEFAULT_SHUTDOWN_GRACE
from chatservice.server.service import ChatService, Listener
from chatservice.server.tls import tls_listener
from tests.server.test_options import parse
from tests.support.certs import common_name, make_certificate
from tests.support.helpers import (
    TIMEOUT,
    LineClient,
    capture_events,
    deferred_test,
    with_format,
)
from tests.support.lines import RENDERER, LineChat
from tests.support.memory import Connection, Harness, ManualScheduler, discard

SHUTTING_DOWN = wire.shutting_down()
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


# Helpers


def chat_events(events: list[LogEvent]) -> list[LogEvent]:
    return [e for e in events if e.get("log_namespace", "").startswith("chatservice")]


def errors(events: list[LogEvent]) -> list[LogEvent]:
    """
    The chat's events logged as errors.
    """
    return [e for e in chat_events(events) if e.get("log_level") == LogLevel.error]


def directory(testcase: unittest.SynchronousTestCase) -> Path:
    """
    A new directory, removed after C{testcase}.
    """
    path = Path(tempfile.mkdtemp())
    testcase.addCleanup(shutil.rmtree, path, True)
    return path


class Recorder:
    """
    A recipient that keeps what it is sent, and whether it was closed.
    """

    renderer = RENDERER

    def __init__(self, on_close: Callable[[], None] | None = None) -> None:
        self.data = b""
        self.closed = 0
        self.on_close = on_close
        self.on_deliver: Callable[[], None] | None = None

    def deliver(self, data: bytes) -> None:
        self.data += data
        if self.on_deliver is not None:
            self.on_deliver()

    def close(self) -> None:
        self.closed += 1
        if self.on_close is not None:
            self.on_close()

    def take(self) -> list[str]:
        lines = self.data.decode("utf-8").split("\r\n")[:-1]
        self.data = b""
        return lines


class AbortableTransport(StringTransport):
    """
    A transport that, like a real one, reports the connection lost when it
    is aborted; closing it cleanly is up to the test.
    """

    protocol: Any = None
    aborted = 0

    def abortConnection(self) -> None:
        self.aborted += 1
        if not self.disconnected:
            super().abortConnection()
            self.protocol.connectionLost(Failure(ConnectionAborted()))


# Registry.close_all


class CloseAllTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.turns = ManualScheduler()
        self.history = History()
        self.registry = LineChat(schedule=self.turns, history=self.history)
        self.recorders: list[Recorder] = []

    def members(self, n: int) -> list[Member]:
        members = []
        for _ in range(n):
            recorder = Recorder()
            self.recorders.append(recorder)
            members.append(self.registry.connect(recorder))
        self.turns.run()
        for recorder in self.recorders:
            recorder.take()
        return members

    def test_pendingLinesThenShutdownInOrder(self) -> None:
        """
        Everyone gets what was said this turn, in order, then the shutdown
        line, and nothing about anyone leaving.
        """
        a, b, c = self.members(3)
        self.registry.join(c, "python")
        self.turns.run()
        for recorder in self.recorders:
            recorder.take()
        self.registry.say(a, "one")
        self.registry.say(a, "two")
        self.registry.whisper(a, b.nick, "psst")
        self.registry.say(b, "three")
        self.registry.say(c, "in python")
        self.registry.close_all(Closing())
        ra, rb, rc = self.recorders
        lobby = "[lobby] <{}> {}".format
        self.assertEqual(ra.take(), [lobby(b.nick, "three"), SHUTTING_DOWN])
        self.assertEqual(
            rb.take(),
            [
                lobby(a.nick, "one"),
                lobby(a.nick, "two"),
                f"*{a.nick}* psst",
                SHUTTING_DOWN,
            ],
        )
        self.assertEqual(
            rc.take(),
            [
                lobby(a.nick, "one"),
                lobby(a.nick, "two"),
                lobby(b.nick, "three"),
                SHUTTING_DOWN,
            ],
        )

    def test_everyoneClosedOnce(self) -> None:
        self.members(3)
        self.registry.close_all(Closing())
        self.assertEqual([r.closed for r in self.recorders], [1, 1, 1])

    def test_nothingAfterwards(self) -> None:
        """
        Nothing is delivered after the shutdown line, even when the turn's
        flush runs later.
        """
        a, _ = self.members(2)
        self.registry.say(a, "late")
        self.registry.close_all(Closing())
        for recorder in self.recorders:
            self.assertEqual(recorder.take()[-1], SHUTTING_DOWN)
        self.turns.run()
        self.assertEqual([r.take() for r in self.recorders], [[], []])

    def test_membersAndRoomsEmptied(self) -> None:
        members = self.members(3)
        self.registry.join(members[0], "python")
        self.registry.close_all(Closing())
        self.assertEqual(self.registry.members, {})
        self.assertEqual(self.registry.rooms, {})
        for member in members:
            self.assertFalse(member.connected)
            self.assertEqual(member.rooms, {})
            self.assertIsNone(self.registry.current(member))

    def test_historyOfTheTurnRecorded(self) -> None:
        a, _ = self.members(2)
        self.registry.say(a, "saved before the end")
        self.registry.close_all(Closing())
        self.assertEqual(
            [entry.text for entry in self.history.recent("lobby", 10)],
            ["saved before the end"],
        )

    def test_closeThatDisconnects(self) -> None:
        """
        A recipient whose close ends its member at once (a transport gone
        already) makes no quit line for anyone.
        """
        a, b = self.members(2)
        self.recorders[0].on_close = lambda: self.registry.disconnect(a, "gone")
        self.registry.close_all(Closing())
        self.turns.run()
        self.assertEqual(self.recorders[1].take(), [SHUTTING_DOWN])
        self.assertFalse(b.connected)

    def test_disconnectDuringDelivery(self) -> None:
        """
        A recipient that goes away while it is handed its last line (as a
        client over its send queue does) disturbs nobody else: everyone
        after it still gets the line and is closed.
        """
        a, b, c = self.members(3)
        self.recorders[1].on_deliver = lambda: self.registry.disconnect(b, "SendQ")
        self.registry.close_all(Closing())
        self.assertEqual(self.recorders[2].take(), [SHUTTING_DOWN])
        self.assertEqual([r.closed for r in self.recorders], [1, 1, 1])
        self.assertFalse(c.connected)
        self.assertFalse(a.connected)

    def test_nobodyConnected(self) -> None:
        self.registry.close_all(Closing())
        self.assertEqual(self.registry.members, {})


# LineFactory.shut_down


class ShutDownTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.events = capture_events(self)
        self.harness = Harness(Limits(flood_rate=0))

    def connect(self) -> tuple[Connection, AbortableTransport]:
        address = self.harness.address()
        transport = AbortableTransport(peerAddress=address)
        connection = self.harness.connect(address, transport)
        transport.protocol = connection.proto
        discard(connection)
        return connection, transport

    def test_noConnectionsFiresAtOnce(self) -> None:
        d = self.harness.shut_down(5)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.harness.clock.getDelayedCalls(), [])

    def test_everyoneToldAndClosed(self) -> None:
        a, b = self.harness.clients(2)
        # Said, but not yet delivered, when the stop comes.
        a.proto.dataReceived(b"last words\n")
        self.harness.shut_down(5)
        self.assertEqual(b.take(), [f"[lobby] <{a.nick}> last words", SHUTTING_DOWN])
        self.assertEqual(a.take(), [SHUTTING_DOWN])
        self.assertTrue(a.transport.disconnecting)
        self.assertTrue(b.transport.disconnecting)

    def test_inputIgnoredAfterwards(self) -> None:
        a, b = self.harness.clients(2)
        self.harness.shut_down(5)
        discard(a, b)
        received = self.harness.factory.stats.lines_received
        a.lines("too late", "/nick latecomer")
        self.assertEqual(b.take(), [])
        self.assertEqual(a.take(), [])
        self.assertEqual(self.harness.factory.stats.lines_received, received)
        self.assertFalse(self.harness.admission.accepting_input)

    def test_firesWhenAllClosed(self) -> None:
        """
        The Deferred fires when the last connection has closed, and leaves
        no timer behind.
        """
        (a, _), (b, _) = self.connect(), self.connect()
        d = self.harness.shut_down(5)
        self.assertNoResult(d)
        a.lost()
        self.assertNoResult(d)
        b.lost()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.harness.admission.open, {})
        self.assertEqual(self.harness.clock.getDelayedCalls(), [])

    def test_waitLogged(self) -> None:
        self.connect()
        self.connect()
        self.harness.shut_down(3)
        [waiting] = [e for e in self.events if e.get("count") == 2 and "grace" in e]
        self.assertEqual(waiting["grace"], 3)

    def test_graceAbortsTheRest(self) -> None:
        """
        Connections still open C{grace} seconds on are aborted then, not
        before; those that closed are left alone.
        """
        (a, closes), (_, stays) = self.connect(), self.connect()
        d = self.harness.shut_down(2)
        # Whatever it fires with is for test_graceThenFires to check.
        d.addErrback(lambda _: None)
        a.lost()
        self.harness.advance(1.999)
        self.assertEqual(stays.aborted, 0)
        self.harness.advance(0.001)
        self.assertEqual((closes.aborted, stays.aborted), (0, 1))
        [aborting] = [e for e in self.events if e.get("reason") == "shutdown grace"]
        self.assertEqual(aborting["count"], 1)

    def test_graceThenFires(self) -> None:
        """
        After the grace the Deferred fires with None, not a failure, so
        that the service can go on to stop the database.
        """
        self.connect()
        d = self.harness.shut_down(2)
        self.harness.advance(2)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.harness.admission.open, {})


# ChatService: the order of a stop


class Step(Service):
    """
    A child service whose stop is recorded and finishes when the test says.
    """

    def __init__(self, name: str, journal: list[str]) -> None:
        self.setName(name)
        self.journal = journal
        self.stopping: Deferred[None] | None = None

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self.journal.append(f"stop {self.name}")
        self.stopping = Deferred()
        return self.stopping


class FakeAdmission:
    def __init__(self, journal: list[str]) -> None:
        self.journal = journal
        self.grace: float | None = None
        self.done: Deferred[None] = Deferred()

    def shut_down(self, chat: Chat, grace: float) -> Deferred[None]:
        self.journal.append("shut down")
        self.grace = grace
        return self.done


class StopOrderTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.journal: list[str] = []
        self.service = ChatService()
        self.service.grace = 3.5
        # As makeService does: the database is the first child.
        self.database = Step("database", self.journal)
        self.database.setServiceParent(self.service)
        self.service.database = cast(Any, self.database)
        self.listeners = [Step(f"port {n}", self.journal) for n in (1, 2)]
        for listener in self.listeners:
            listener.setServiceParent(self.service)
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, limit)
        self.service.startService()
        self.assertTrue(self.database.running)

    def test_order(self) -> None:
        """
        The listeners stop first (together), then the chat shuts down, then
        the database stops; the service has stopped when it has.
        """
        factory = FakeAdmission(self.journal)
        self.service.chat = Chat()
        self.service.admission = cast(Admission, factory)
        d = self.service.stopService()
        self.assertEqual(self.journal, ["stop port 1", "stop port 2"])
        one, two = (listener.stopping for listener in self.listeners)
        assert one is not None and two is not None
        one.callback(None)
        self.assertEqual(self.journal, ["stop port 1", "stop port 2"])
        two.callback(None)
        self.assertEqual(self.journal[-1], "shut down")
        self.assertEqual(factory.grace, 3.5)
        factory.done.callback(None)
        self.assertEqual(self.journal[-1], "stop database")
        self.assertNoResult(d)
        assert self.database.stopping is not None
        self.database.stopping.callback(None)
        self.assertIsNone(self.successResultOf(d))
        self.assertFalse(self.service.running)

    def test_withoutFactory(self) -> None:
        d = self.service.stopService()
        for listener in self.listeners:
            assert listener.stopping is not None
            listener.stopping.callback(None)
        self.assertEqual(self.journal[-1], "stop database")
        assert self.database.stopping is not None
        self.database.stopping.callback(None)
        self.successResultOf(d)

    def test_databaseStoppedAfterGrace(self) -> None:
        """
        A client that never takes its last lines delays the database's stop
        by the grace only: history is still written.
        """
        harness = Harness()
        harness.clients(1)
        self.service.chat = harness.chat
        self.service.admission = harness.admission
        self.service.grace = 2
        results: list[object] = []
        self.service.stopService().addBoth(results.append)
        for listener in self.listeners:
            assert listener.stopping is not None
            listener.stopping.callback(None)
        self.assertNotIn("stop database", self.journal)
        harness.advance(2)
        self.assertEqual(self.journal[-1], "stop database")
        assert self.database.stopping is not None
        self.database.stopping.callback(None)
        self.assertEqual(results, [None])


class WholeStopTests(unittest.TestCase):
    """
    A service from L{tap.makeService} on a loopback port, stopped with a
    client connected.
    """

    @deferred_test
    async def test_stop(self) -> None:
        service = tap.makeService(
            parse("--port", "tcp:0:interface=127.0.0.1", "--shutdown-grace", "2")
        )
        assert isinstance(service, ChatService)
        service.handle_signals = False
        events = capture_events(self)
        service.privilegedStartService()
        service.startService()
        [address] = [
            e["address"]
            for e in events
            if e.get("log_format") == "{what} server listening on {address}"
        ]
        client = await endpoints.connectProtocol(
            endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", address.port),
            LineClient(),
        )
        await client.next_line(lambda line: line.startswith("*** Welcome"))

        journal: list[str] = []
        for child in list(service):
            if child is service.database:
                continue
            stop = child.stopService

            def stop_listener(stop: Callable[[], Any] = stop) -> Deferred[None]:
                d: Deferred[None] = maybeDeferred(stop)
                return d.addCallback(lambda _: journal.append("listener stopped"))

            self.patch(child, "stopService", stop_listener)
        factory = service.admission
        database = service.database
        assert factory is not None and database is not None
        shut_down, stop_database = factory.shut_down, database.stopService

        def record_shut_down(chat: Chat, grace: float) -> Deferred[None]:
            journal.append(f"shut down, {factory.connections} open, grace {grace}")
            return shut_down(chat, grace).addCallback(
                lambda _: journal.append(f"shut down, {factory.connections} open")
            )

        def record_stop_database() -> Deferred[None]:
            journal.append("stop database")
            return stop_database()

        self.patch(factory, "shut_down", record_shut_down)
        self.patch(database, "stopService", record_stop_database)
        await service.stopService()
        self.assertEqual(
            journal,
            [
                "listener stopped",
                "shut down, 1 open, grace 2.0",
                "shut down, 0 open",
                "stop database",
            ],
        )
        self.assertEqual(client.lines[-1], SHUTTING_DOWN)
        await client.when_lost()
        self.assertFalse(database.running)


# Signals


class SignalReactor:
    """
    Stands in for the reactor where the service's signal handlers reach it.
    """

    def __init__(self) -> None:
        self.stops = 0
        self.when_running: list[Callable[[], object]] = []
        self.from_thread: list[Callable[..., object]] = []

    def stop(self) -> None:
        self.stops += 1

    def callWhenRunning(self, f: Callable[[], object]) -> None:
        self.when_running.append(f)

    def callFromThread(self, f: Callable[..., object], *args: object) -> None:
        self.from_thread.append(f)
        f(*args)


class SignalTests(unittest.SynchronousTestCase):
    """
    The service's handlers, installed in this process for real, reaching a
    fake reactor. The process's own handlers are back after each test.
    """

    def setUp(self) -> None:
        self.previous = {number: signal.getsignal(number) for number in SIGNALS}
        for number, handler in self.previous.items():
            if handler is not None:
                self.addCleanup(signal.signal, number, handler)
        self.reactor = SignalReactor()
        self.patch(twisted.internet, "reactor", self.reactor)
        self.events = capture_events(self)
        self.service = ChatService()

    def raise_signal(self, number: signal.Signals, handler: Any) -> None:
        """
        Send this process C{number}, once sure that C{handler} will take it.
        """
        self.assertEqual(signal.getsignal(number), handler)
        signal.raise_signal(number)

    def test_installAndRestore(self) -> None:
        self.service._install_signal_handlers()
        self.assertEqual(
            [signal.getsignal(number) for number in SIGNALS],
            [
                self.service._stop_signal,
                self.service._stop_signal,
                self.service._reload_signal,
            ],
        )
        self.service._restore_signal_handlers()
        self.assertEqual(
            {number: signal.getsignal(number) for number in SIGNALS}, self.previous
        )

    def test_installTwiceRestoresTheOriginals(self) -> None:
        """
        Installed again over the reactor's own handlers, the service still
        restores those it found first.
        """
        self.service._install_signal_handlers()
        self.service._install_signal_handlers()
        self.service._restore_signal_handlers()
        self.assertEqual(
            {number: signal.getsignal(number) for number in SIGNALS}, self.previous
        )

    def test_installedBeforeListeners(self) -> None:
        """
        With C{handle_signals}, the handlers are in place before any child
        (a listener) starts, so a SIGHUP as soon as the server is reachable
        reloads rather than kills it.
        """
        seen: list[object] = []

        class Listener(Service):
            def privilegedStartService(self) -> None:
                seen.append(signal.getsignal(signal.SIGHUP))

        self.service.handle_signals = True
        Listener().setServiceParent(self.service)
        self.service.privilegedStartService()
        self.assertEqual(seen, [self.service._reload_signal])
        self.service._restore_signal_handlers()
        self.assertEqual(signal.getsignal(signal.SIGHUP), self.previous[signal.SIGHUP])

    def test_notInstalledWithoutHandleSignals(self) -> None:
        self.service.privilegedStartService()
        self.assertEqual(
            {number: signal.getsignal(number) for number in SIGNALS}, self.previous
        )

    def test_stopRestoresHandlers(self) -> None:
        self.service._install_signal_handlers()
        self.successResultOf(self.service.stopService())
        self.assertEqual(
            {number: signal.getsignal(number) for number in SIGNALS}, self.previous
        )

    def test_sigtermStopsTheReactorOnce(self) -> None:
        """
        SIGTERM stops the reactor; a second signal (SIGINT, an impatient
        Ctrl-C) is logged and changes nothing.
        """
        self.service._install_signal_handlers()
        self.raise_signal(signal.SIGTERM, self.service._stop_signal)
        self.assertEqual(self.reactor.stops, 1)
        self.raise_signal(signal.SIGINT, self.service._stop_signal)
        self.assertEqual(self.reactor.stops, 1)
        self.assertEqual(
            [(e["log_format"], e["signal"]) for e in self.events if "signal" in e],
            [
                ("Received {signal}; shutting down", "SIGTERM"),
                ("Received {signal}; already shutting down", "SIGINT"),
            ],
        )
        self.assertEqual(self.reactor.from_thread, [self.service._stop_reactor] * 2)

    def test_stopReactorTwice(self) -> None:
        self.service._stop_reactor("SIGINT")
        self.service._stop_reactor("SIGINT")
        self.assertEqual(self.reactor.stops, 1)
        [again] = with_format(self.events, "Received {signal}; already shutting down")
        self.assertEqual(again["signal"], "SIGINT")

    def test_sighupReloads(self) -> None:
        reloads: list[None] = []
        self.patch(self.service, "reload", lambda: reloads.append(None))
        self.service._install_signal_handlers()
        self.raise_signal(signal.SIGHUP, self.service._reload_signal)
        self.assertEqual(reloads, [None])
        self.assertEqual(self.reactor.stops, 0)

    def test_installedWhenReactorRuns(self) -> None:
        """
        Starting with C{handle_signals} installs the handlers once the
        reactor runs (after its own); without it, never.
        """
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, limit)
        self.service.startService()
        self.assertEqual(self.reactor.when_running, [])
        self.service.stopService()
        handled = ChatService()
        handled.handle_signals = True
        handled.startService()
        self.addCleanup(handled.stopService)
        self.assertEqual(self.reactor.when_running, [handled._install_signal_handlers])
        self.assertEqual(signal.getsignal(signal.SIGHUP), self.previous[signal.SIGHUP])


# SIGHUP: reloading the message of the day


class MotdReloadTests(unittest.TestCase):
    def setUp(self) -> None:
        self.events = capture_events(self)
        self.path = directory(self) / "motd.txt"
        self.path.write_text("Old news.\n")
        self.harness = Harness()
        self.harness.chat.motd = ["Old news."]
        self.service = ChatService()
        self.service.chat = self.harness.chat
        self.service.motd_path = str(self.path)

    @deferred_test
    async def test_changed(self) -> None:
        self.path.write_text("Fresh news.\n\nBe kind.\n")
        await self.service.reload()
        self.assertEqual(self.harness.chat.motd, ["Fresh news.", "", "Be kind."])
        [reloaded] = with_format(self.events, "Reloaded the MOTD from {path}")
        self.assertEqual(reloaded["path"], str(self.path))
        # New connections see it.
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", 1))
        self.harness.factory.buildProtocol(transport.getPeer()).makeConnection(
            transport
        )
        self.harness.chat.flush()
        lines = transport.value().decode("utf-8").split("\r\n")
        self.assertEqual(
            lines[1:5],
            ["*** Message of the day:", "*** - Fresh news.", "*** -", "*** - Be kind."],
        )

    @deferred_test
    async def test_missingKeepsOld(self) -> None:
        self.path.unlink()
        await self.service.reload()
        self.assertEqual(self.harness.chat.motd, ["Old news."])
        [error] = errors(self.events)
        self.assertIn("the old one stays", error["log_format"])
        self.assertIn(str(self.path), error["error"])
        self.assertIn("cannot read", error["error"])

    @deferred_test
    async def test_tooBigKeepsOld(self) -> None:
        self.path.write_bytes(b"x" * (motd.MAX_BYTES + 1))
        await self.service.reload()
        self.assertEqual(self.harness.chat.motd, ["Old news."])
        [error] = errors(self.events)
        self.assertIn(f"over {motd.MAX_BYTES} bytes", error["error"])

    @deferred_test
    async def test_nothingToReload(self) -> None:
        self.service.motd_path = None
        await self.service.reload()
        self.assertEqual(self.harness.chat.motd, ["Old news."])
        self.assertEqual(
            [e["log_format"] for e in chat_events(self.events)],
            ["Received SIGHUP; reloading certificates, the MOTD and the operators"],
        )


# SIGHUP: reloading certificates


def tls_common_name(port: int) -> str:
    """
    Connect to 127.0.0.1:C{port} over TLS (blocking: call on a thread),
    read the welcome, and return the common name of the server's
    certificate.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        data = b""
        while b"\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"*** Welcome to chatservice"):
        raise AssertionError(f"no welcome over TLS: {data!r}")
    assert der is not None
    return common_name(ssl.DER_cert_to_PEM_cert(der).encode("ascii"))


class CertificateReloadTests(unittest.TestCase):
    """
    A TLS listener from C{makeService}, its certificate replaced on disk
    and reloaded as SIGHUP would.
    """

    def setUp(self) -> None:
        self.directory = directory(self)
        self.key, self.cert = make_certificate(self.directory, "server", "first")
        self.events = capture_events(self)
        description = (
            f"ssl:0:interface=127.0.0.1:privateKey={self.key}:certKey={self.cert}"
        )
        service = tap.makeService(parse("--port", description, "--shutdown-grace", "2"))
        assert isinstance(service, ChatService)
        self.service = service
        service.handle_signals = False
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        [address] = [
            e["address"]
            for e in self.events
            if e.get("log_format") == "{what} server listening on {address}"
        ]
        self.port = address.port

    def served(self) -> Deferred[str]:
        return deferToThread(tls_common_name, self.port)

    def replace(self, common: str) -> None:
        make_certificate(self.directory, "server", common)

    @deferred_test
    async def test_newCertificateUsed(self) -> None:
        self.assertEqual(await self.served(), "first")
        self.replace("second")
        self.assertEqual(await self.served(), "first", "used before the reload")
        await self.service.reload()
        self.assertEqual(await self.served(), "second")
        [reloaded] = with_format(
            self.events, "Reloaded the TLS certificate of {endpoint}: {subject}"
        )
        self.assertTrue(reloaded["subject"].startswith("second, valid until "))
        self.assertIn(str(self.cert), reloaded["endpoint"])

    @deferred_test
    async def test_badFilesKeepOld(self) -> None:
        """
        Files that do not make a certificate (not PEM; a key that does not
        match) are logged and the old certificate stays in use.
        """
        [certificate] = self.service.certificates
        self.cert.write_text("not a certificate\n")
        self.assertFalse(await certificate.reload())
        self.assertEqual(await self.served(), "first")
        other_key, _ = make_certificate(self.directory, "other", "other")
        self.replace("second")
        shutil.copy(other_key, self.key)
        await self.service.reload()
        self.assertEqual(await self.served(), "first")
        logged = errors(self.events)
        self.assertEqual(len(logged), 2, logged)
        for error in logged:
            self.assertIn("the old", error["log_format"])
            self.assertTrue(error["error"])
        self.assertEqual(
            with_format(
                self.events, "Reloaded the TLS certificate of {endpoint}: {subject}"
            ),
            [],
        )


class TLSListenerTests(unittest.SynchronousTestCase):
    """
    L{tls_listener} takes an C{ssl:} string apart into a TCP endpoint and a
    certificate that can be reloaded; L{ReloadableCertificate.wrap} puts TLS
    around a factory with it.
    """

    def test_notSSL(self) -> None:
        self.assertRaises(
            ValueError, tls_listener, reactor, "tcp:0:interface=127.0.0.1"
        )

    def test_ssl(self) -> None:
        """
        The TCP endpoint listens on the port, interface and backlog the
        string gives; the reloadable certificate starts with the one the
        string names.
        """
        key, cert = make_certificate(directory(self), "server", "installed")
        description = (
            f"ssl:6697:interface=127.0.0.1:backlog=7:privateKey={key}:certKey={cert}"
        )
        memory = MemoryReactor()
        endpoint, reloadable = tls_listener(memory, description)
        self.assertIsInstance(endpoint, endpoints.TCP4ServerEndpoint)
        endpoint.listen(Factory())
        [(port, _, backlog, interface)] = memory.tcpServers
        self.assertEqual((port, backlog, interface), (6697, 7, "127.0.0.1"))
        self.assertEqual(memory.sslServers, [])
        self.assertIsInstance(reloadable.current, CertificateOptions)
        self.assertEqual(reloadable.description, description)
        verifyObject(IOpenSSLServerConnectionCreator, reloadable)
        connection = reloadable.serverConnectionForTLS(None)
        self.assertIsInstance(connection, SSL.Connection)
        certificate = connection.get_certificate()
        assert certificate is not None
        pem = certificate.to_cryptography().public_bytes(Encoding.PEM)
        self.assertEqual(common_name(pem), "installed")

    def test_wrap(self) -> None:
        key, cert = make_certificate(directory(self), "server", "installed")
        _, reloadable = tls_listener(reactor, f"ssl:0:privateKey={key}:certKey={cert}")
        chat = Factory()
        wrapped = reloadable.wrap(chat)
        self.assertIsInstance(wrapped, TLSMemoryBIOFactory)
        self.assertIs(wrapped.wrappedFactory, chat)

    def test_makeServiceCollectsThem(self) -> None:
        """
        An C{ssl:} listener listens on TCP, with TLS around the one chat
        factory and the certificate that SIGHUP reloads.
        """
        key, cert = make_certificate(directory(self), "server", "installed")
        service = tap.makeService(
            parse(
                "--port",
                "tcp:0:interface=127.0.0.1",
                "--port",
                f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
            )
        )
        assert isinstance(service, ChatService)
        [certificate] = service.certificates
        self.assertIn(str(cert), certificate.description)
        plain, tls = service.listeners()
        self.assertEqual(
            [type(plain.endpoint), type(tls.endpoint)],
            [endpoints.TCP4ServerEndpoint, endpoints.TCP4ServerEndpoint],
        )
        self.assertIsInstance(plain.factory, LineFactory)
        assert isinstance(tls.factory, TLSMemoryBIOFactory)
        self.assertIs(tls.factory.wrappedFactory, plain.factory)


# The message of the day


class ReadMotdTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.path = directory(self) / "motd.txt"

    def read(self, data: bytes) -> list[str]:
        self.path.write_bytes(data)
        return motd.read_motd(str(self.path))

    def error(self, data: bytes | None) -> str:
        if data is not None:
            self.path.write_bytes(data)
        return str(self.assertRaises(motd.MotdError, motd.read_motd, str(self.path)))

    def test_plain(self) -> None:
        self.assertEqual(self.read(b"Welcome.\nBe kind.\n"), ["Welcome.", "Be kind."])

    def test_cleaned(self) -> None:
        """
        Escape sequences and control characters are removed, tabs become
        spaces and invalid UTF-8 is replaced.
        """
        self.assertEqual(
            self.read(
                b"\x1b[31mred\x1b[0m alert\x07\n\x1b]0;title\x07tab\there\n"
                b"caf\xe9 \xe2\x80\xae\xc3\xa9\n"
            ),
            ["red alert", "tab here", "caf\ufffd \u00e9"],
        )

    def test_crlf(self) -> None:
        self.assertEqual(
            self.read(b"one\r\ntwo\r\n\r\nthree\r\n"), ["one", "two", "", "three"]
        )

    def test_trailingBlankLinesDropped(self) -> None:
        self.assertEqual(self.read(b"\nfirst\n\n  \n\n"), ["", "first"])
        self.assertEqual(self.read(b"first\n\x1b[2J\n"), ["first"])

    def test_noFinalNewline(self) -> None:
        self.assertEqual(self.read(b"one\ntwo"), ["one", "two"])

    def test_empty(self) -> None:
        self.assertEqual(self.read(b""), [])

    def test_limits(self) -> None:
        self.assertEqual(len(self.read(b"x" * motd.MAX_BYTES)), 1)
        lines = b"line\n" * motd.MAX_LINES
        self.assertEqual(len(self.read(lines + b"\n\n")), motd.MAX_LINES)

    def test_tooBig(self) -> None:
        message = self.error(b"x" * (motd.MAX_BYTES + 1))
        self.assertIn(str(self.path), message)
        self.assertIn(f"over {motd.MAX_BYTES} bytes", message)

    def test_tooManyLines(self) -> None:
        message = self.error(b"line\n" * (motd.MAX_LINES + 1))
        self.assertIn(str(self.path), message)
        self.assertIn(f"over {motd.MAX_LINES} lines", message)

    def test_missing(self) -> None:
        message = self.error(None)
        self.assertIn(f"cannot read {self.path}", message)
        self.assertIn("No such file", message)

    def test_directory(self) -> None:
        message = str(
            self.assertRaises(motd.MotdError, motd.read_motd, str(self.path.parent))
        )
        self.assertIn("cannot read", message)


class MotdShownTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = Harness(history=History())

    def test_afterWelcomeBeforeHistory(self) -> None:
        [a] = self.harness.clients(1)
        a.say("earlier")
        self.harness.chat.motd = ["Hello.", "", "Be kind."]
        b = self.harness.connect()
        lines = b.take()
        self.assertTrue(lines[0].startswith("*** Welcome to chatservice, "))
        self.assertEqual(
            lines[1:5],
            ["*** Message of the day:", "*** - Hello.", "*** -", "*** - Be kind."],
        )
        self.assertEqual(lines[5], "*** Last 1 line(s) of lobby:")
        self.assertRegex(lines[6], rf"^\[lobby\] \(.*\) <{a.nick}> earlier$")
        self.assertEqual(lines[7:], ["*** End of history of lobby."])

    def test_noMotd(self) -> None:
        b = self.harness.connect()
        [welcome] = b.take()
        self.assertTrue(welcome.startswith("*** Welcome"))

    def test_onlyNewcomers(self) -> None:
        """
        The message is for newcomers: joining a room does not repeat it.
        """
        self.harness.chat.motd = ["Hello."]
        [a] = self.harness.clients(1)
        a.say("/join python")
        self.assertNotIn("*** - Hello.", a.take())


# The service the options make


class ServiceOptionsTests(unittest.SynchronousTestCase):
    def test_metricsListener(self) -> None:
        service = tap.makeService(
            parse(
                "--port",
                "tcp:0:interface=127.0.0.1",
                "--metrics",
                "tcp:0:interface=127.0.0.1",
            )
        )
        assert isinstance(service, ChatService)
        # The listeners are the service's Listener children, in order.
        self.assertEqual(
            [(listener.what, listener.source) for listener in service.listeners()],
            [
                ("Chat", "--port tcp:0:interface=127.0.0.1"),
                ("Metrics", "--metrics tcp:0:interface=127.0.0.1"),
            ],
        )
        [metrics] = [
            c for c in service if isinstance(c, Listener) and c.what == "Metrics"
        ]
        chat = [c for c in service if isinstance(c, Listener) and c.what == "Chat"]
        self.assertEqual(len(chat), 1)
        self.assertIsInstance(metrics.factory, Site)
        self.assertIsInstance(metrics.endpoint, endpoints.TCP4ServerEndpoint)
        self.assertIn(b"metrics", metrics.factory.resource.children)

    def test_noMetricsByDefault(self) -> None:
        service = tap.makeService(parse())
        self.assertEqual(
            [c for c in service if isinstance(c, Listener) and c.what == "Metrics"], []
        )

    def test_jsonLogObserver(self) -> None:
        """
        C{--log-format json} gives the application a JSON log observer,
        which twistd then uses instead of its own.
        """
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        options = parse("--log-format", "json")
        options.parent = {"nodaemon": True, "logfile": None}
        service = tap.makeService(options)
        assert isinstance(service, ChatService)
        self.assertIsNotNone(service.log_observer)
        application = Application("chat")
        service.setServiceParent(application)
        observer = application.getComponent(ILogObserver)
        self.assertIs(observer, service.log_observer)
        observer({"log_format": "{nick} here", "nick": "alice", "log_time": 0.0})
        self.assertEqual(json.loads(out.getvalue())["text"], "alice here")

    def test_textLogsLeftToTwistd(self) -> None:
        service = tap.makeService(parse())
        assert isinstance(service, ChatService)
        self.assertIsNone(service.log_observer)
        application = Application("chat")
        service.setServiceParent(application)
        self.assertIsNone(application.getComponent(ILogObserver))

    def test_grace(self) -> None:
        service = tap.makeService(parse("--shutdown-grace", "2.5"))
        assert isinstance(service, ChatService)
        self.assertEqual(service.grace, 2.5)
        self.assertTrue(service.handle_signals)
        default = tap.makeService(parse())
        assert isinstance(default, ChatService)
        self.assertEqual(default.grace, DEFAULT_SHUTDOWN_GRACE)

    def test_motd(self) -> None:
        path = directory(self) / "motd.txt"
        path.write_bytes(b"Welcome \x1b[1mall\x1b[0m.\n\n")
        service = tap.makeService(parse("--motd", str(path)))
        assert isinstance(service, ChatService)
        self.assertEqual(service.motd_path, str(path))
        assert service.chat is not None
        self.assertEqual(list(service.chat.motd), ["Welcome all."])

    def test_noMotd(self) -> None:
        service = tap.makeService(parse())
        assert isinstance(service, ChatService)
        self.assertIsNone(service.motd_path)
        assert service.chat is not None
        self.assertEqual(list(service.chat.motd), [])
