"""
The minimal Twisted broadcast server, as a competent user would write it.

Every line a client sends (ending in ``\\n``) is written, with its ``\\n``,
to every other connected client's transport, one write per recipient per
line. Nothing clever: no coalescing, no limits, no names, no rooms.

    python -m chatservice.bench.peers.minimal [PORT]

Listens on 127.0.0.1:PORT (0, the default, lets the kernel choose) and
prints ``listening on PORT`` once it is listening.
"""

from __future__ import annotations

import resource
import sys

from twisted.internet import reactor
from twisted.internet.protocol import ServerFactory
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure


class Relay(LineReceiver):
    delimiter = b"\n"
    factory: RelayFactory

    def connectionMade(self) -> None:
        self.factory.clients.add(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.factory.clients.discard(self)

    def lineReceived(self, line: bytes) -> None:
        data = line + b"\n"
        for client in self.factory.clients:
            if client is not self and client.transport is not None:
                client.transport.write(data)


class RelayFactory(ServerFactory[Relay]):
    protocol = Relay

    def __init__(self) -> None:
        self.clients: set[Relay] = set()


def main() -> None:
    # Hold as many connections as the chat server can.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port_number = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    factory = RelayFactory()
    port = reactor.listenTCP(port_number, factory, interface="127.0.0.1")  # type: ignore[arg-type]
    print(f"listening on {port.getHost().port}", flush=True)  # type: ignore[attr-defined]
    reactor.run()


if __name__ == "__main__":
    main()
