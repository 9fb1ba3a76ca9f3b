"""
The C{twistd chat} plugin's options and service.
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService
from twisted.internet import endpoints
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python import usage

from chatservice.protocol import DEFAULT_MAX_LINE, ChatFactory

DEFAULT_PORT = "tcp:12345:interface=127.0.0.1"

log = Logger()


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"{value} is not a positive whole number")
    return number


class Options(usage.Options):
    synopsis = "[--port ENDPOINT]... [options]"
    longdesc = (
        "Run the chatservice chat server. Clients connect with nc, telnet or "
        "chat-client. Listens on " + DEFAULT_PORT + " unless --port is given. "
        "The wire protocol is documented in docs/protocol.md."
    )
    optParameters: list[Any] = [
        [
            "max-line",
            None,
            DEFAULT_MAX_LINE,
            "Longest line, in bytes, a client may send; longer lines are "
            "refused with an error and the connection stays open.",
            _positive,
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["port"] = []

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


def makeService(options: Options) -> IService:
    """
    One factory, and so one set of rooms, behind every listening endpoint.
    """
    from twisted.internet import reactor

    factory = ChatFactory(reactor, max_line=options["max-line"])
    service = MultiService()
    for description in options["port"]:
        listener = ChatListener(
            endpoints.serverFromString(reactor, description), factory
        )
        # Let twistd report a port that cannot be bound and exit, rather
        # than run without it.
        listener._raiseSynchronously = True
        listener.setServiceParent(service)
    return service
