"""
C{chat-client}: a terminal client that works like C{nc}, on the reactor.

This module owns the command line (L{Options}) and the run of one session
(L{run}): it connects, hands standard input and output to a
L{chatservice.client.console.Console}, and turns the way the session ended
into the exit status. Standard input and output are a L{StandardIO} on the
same reactor as the connection, so there are no threads.

At the end of input the client half-closes its connection and keeps printing
until the server, having read everything, closes: so piped input is never
cut short. It exits 0 when the server closes after the user quit or input
ended, and 1 (saying why in one line on standard error) when the server
cannot be reached or goes away by itself.

Beyond that, and only when asked or when a person is typing:

  - C{--tls}, C{--ca-file}, C{--insecure} and C{--connect tls:...} reach
    the server over TLS (L{chatservice.client.tls}).
  - C{--reconnect} survives lost connections
    (L{chatservice.client.reconnect}).
  - When standard input and output are both a terminal, incoming lines do
    not break up the line being typed (L{chatservice.client.console}).
    Piped use is byte for byte what it always was.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet import endpoints, task
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore, IStreamClientEndpoint
from twisted.python import usage

import chatservice
from chatservice.client.connection import ServerConnection, describe_end
from chatservice.client.console import Console, complain
from chatservice.client.reconnect import ReconnectingLink
from chatservice.client.tls import (
    INSECURE_WARNING,
    SSL_WARNING,
    client_endpoint,
    endpoint_type,
    load_ca_file,
    server_name,
    split_description,
)

if TYPE_CHECKING:
    # Not exported by twisted.internet.ssl, whose functions take it.
    from twisted.internet._sslverify import IOpenSSLTrustRoot

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Options", "main", "run"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 12345


class Options(usage.Options):
    synopsis = (
        "Usage: chat-client [--tls [--ca-file FILE | --insecure]] [--reconnect] "
        "[HOST [PORT]]\n"
        "       chat-client [--ca-file FILE | --insecure] [--reconnect] "
        "--connect ENDPOINT"
    )
    longdesc = (
        "Connect to a chatservice server (default "
        f"{DEFAULT_HOST}:{DEFAULT_PORT}). Lines typed go to the server, lines "
        "from the server are printed. At the end of input the client waits "
        "for the server to finish, then exits 0."
    )
    optFlags = [
        [
            "tls",
            None,
            "Connect to HOST PORT with TLS, checking that the server's "
            "certificate is signed by an authority the system trusts (or one "
            "in --ca-file) and is valid for HOST.",
        ],
        [
            "insecure",
            None,
            "With TLS, do not check the server's certificate at all. Anyone "
            "on the path could read and change the chat; a warning says so.",
        ],
        [
            "reconnect",
            None,
            "When the connection is lost, connect again (waiting longer "
            "after each failure, at most 30 s) and restore the nickname, "
            "login and rooms; lines typed meanwhile are sent then.",
        ],
    ]
    optParameters = [
        [
            "connect",
            "c",
            None,
            "Connect to ENDPOINT, a Twisted client endpoint string such as "
            "tcp:host=example.org:port=12345, tls:host=example.org:port=6697 "
            "or unix:path=/tmp/chat.sock (instead of HOST and PORT).",
        ],
        [
            "ca-file",
            None,
            None,
            "With TLS, trust the certificates in FILE (PEM: authorities, or "
            "the server's own self-signed certificate) instead of the "
            "system's authorities.",
        ],
    ]

    endpoint: str
    trust_root: IOpenSSLTrustRoot | None = None

    def opt_version(self) -> None:
        """
        Show the version of chatservice and exit.
        """
        print(f"chat-client (chatservice) {chatservice.__version__}")
        raise SystemExit(0)

    def parseArgs(self, host: str | None = None, port: str | None = None) -> None:
        if self["connect"] is not None:
            if host is not None:
                raise usage.UsageError("give either HOST [PORT] or --connect")
            if self["tls"]:
                raise usage.UsageError(
                    "--tls is for HOST PORT; with --connect, give a tls: endpoint"
                )
            from twisted.internet import reactor

            try:
                endpoints.clientFromString(reactor, self["connect"])
            except Exception as e:
                raise usage.UsageError(f"--connect {self['connect']}: {e}") from None
            self.endpoint = self["connect"]
            return
        try:
            number = DEFAULT_PORT if port is None else int(port)
        except ValueError:
            raise usage.UsageError(f"PORT must be a number, not {port!r}") from None
        quoted = endpoints.quoteStringArgument(host or DEFAULT_HOST)
        kind = "tls" if self["tls"] else "tcp"
        self.endpoint = f"{kind}:host={quoted}:port={number}"

    def postOptions(self) -> None:
        tls = endpoint_type(self.endpoint) == "tls"
        for flag in ("ca-file", "insecure"):
            if self[flag] and not tls:
                raise usage.UsageError(
                    f"--{flag} is for TLS: add --tls, or --connect a tls: endpoint"
                )
        if self["ca-file"] is not None and self["insecure"]:
            raise usage.UsageError("give either --ca-file or --insecure, not both")
        if self["ca-file"] is not None:
            try:
                self.trust_root = load_ca_file(self["ca-file"])
            except ValueError as e:
                raise usage.UsageError(f"--ca-file: {e}") from None
        if tls:
            # The TLS endpoint is built here, not by Twisted's parser: what
            # only building it can find wrong is a usage error too.
            from twisted.internet import reactor

            try:
                self.make_endpoint(reactor)
            except ValueError as e:
                raise usage.UsageError(f"{self.endpoint}: {e}") from None

    def make_endpoint(self, reactor: IReactorCore) -> IStreamClientEndpoint:
        return client_endpoint(
            reactor, self.endpoint, self.trust_root, bool(self["insecure"])
        )

    @property
    def tls_server(self) -> str | None:
        """
        C{HOST:PORT} when the connection is over TLS, for error messages.
        """
        return server_name(self.endpoint)

    def warnings(self) -> list[str]:
        """
        What to warn the user of before connecting.
        """
        if self["insecure"]:
            return [INSECURE_WARNING]
        if endpoint_type(self.endpoint) == "ssl":
            _, parameters = split_description(self.endpoint)
            if "caCertsDir" not in parameters:
                return [SSL_WARNING]
        return []


class _Interruption:
    """
    The reactor stopping under a session (Ctrl-C, SIGTERM): the session ends
    quietly with status 1, its connection dropped by the reactor, and
    C{on_interrupt} callbacks (putting the terminal back) run first.

    @ivar happened: the reactor is stopping.
    """

    def __init__(self, reactor: IReactorCore) -> None:
        self.happened = False
        self._reactor = reactor
        self._callbacks: list[Callable[[], None]] = []
        self._trigger = reactor.addSystemEventTrigger(
            "before", "shutdown", self._interrupted
        )

    def on_interrupt(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def _interrupted(self) -> None:
        self.happened = True
        for callback in self._callbacks:
            callback()

    def done(self) -> None:
        if not self.happened:
            self._reactor.removeSystemEventTrigger(self._trigger)


def _interactive() -> bool:
    """
    Whether a person is typing at a terminal that shows the output.
    """
    return os.isatty(0) and os.isatty(1)


async def run(
    reactor: IReactorCore,
    options: Options,
    interactive: bool | None = None,
    retry_policy: Callable[[int], float] | None = None,
) -> int:
    """
    Connect, relay until the session ends, and return the exit status.
    """
    for warning in options.warnings():
        complain(warning)
    endpoint = options.make_endpoint(reactor)
    if interactive is None:
        interactive = _interactive()
    interruption = _Interruption(reactor)
    try:
        if options["reconnect"]:
            return await _run_reconnecting(
                reactor, options, endpoint, interactive, retry_policy, interruption
            )
        return await _run_once(reactor, options, endpoint, interactive, interruption)
    finally:
        interruption.done()


async def _run_once(
    reactor: IReactorCore,
    options: Options,
    endpoint: IStreamClientEndpoint,
    interactive: bool,
    interruption: _Interruption,
) -> int:
    server = ServerConnection()
    try:
        await endpoints.connectProtocol(endpoint, server)
    except Exception as e:
        if not interruption.happened:
            complain(f"cannot connect to {options.endpoint}: {e}")
        return 1
    console = Console(reactor, server, interactive)
    interruption.on_interrupt(console.abandon)
    server.print_to(console.output)
    try:
        await server.lost
        if interruption.happened:
            return 1
        status, message = describe_end(
            server, console.terminal.ended, options.tls_server
        )
        if message is not None:
            console.complain(message)
    finally:
        await console.close()
    return status


async def _run_reconnecting(
    reactor: IReactorCore,
    options: Options,
    endpoint: IStreamClientEndpoint,
    interactive: bool,
    retry_policy: Callable[[int], float] | None,
    interruption: _Interruption,
) -> int:
    link = ReconnectingLink(
        endpoint,
        options.endpoint,
        complain,
        reactor,  # type: ignore[arg-type]
        tls_server=options.tls_server,
        retry_policy=retry_policy,
    )
    interruption.on_interrupt(link.abandon)
    link.start()
    # Input is read from the first connection on, as without --reconnect:
    # piped input that ends at once is not "input ended while disconnected".
    if not await link.connected_once:
        return await link.done
    console = Console(reactor, link, interactive)
    interruption.on_interrupt(console.abandon)
    link.print_to(console.output)
    link.complain = console.complain
    try:
        status = await link.done
    finally:
        await console.close()
    return status


def main(argv: list[str] | None = None) -> None:
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        complain(f"{e}\n{options}")
        raise SystemExit(2) from None

    async def _main(reactor: IReactorCore) -> None:
        status = await run(reactor, options)
        if status:
            raise SystemExit(status)

    task.react(lambda reactor: Deferred.fromCoroutine(_main(reactor)))


if __name__ == "__main__":
    main()
