"""
Joining a cluster (C{--redis}): the node's replica of the chat on a Redis
backplane, as a service that starts before the listeners and stops after
them.

Started, it subscribes to the cluster's log and says hello, so that the
other nodes tell it who is where; users may connect meanwhile, and what
they do waits in the backplane's queue until Redis answers. Stopped, it
tells the others its users are gone (each is seen to quit with the
server's shutdown reason) before it leaves.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from chatservice.cluster.backplane import Backplane, BackplaneStats, Timers
from chatservice.cluster.replica import Replica
from chatservice.core.accounts import Accounts
from chatservice.core.chat import Chat
from chatservice.server.options import Options, timers_from

log = Logger()


def redis_backplane(
    reactor: IReactorTime,
    address: str,
    node: str,
    timers: Timers,
    prefix: str = "chat:",
) -> Backplane:
    """
    The Redis backplane at C{address} (see L{endpoint_from}), its keys
    under C{prefix}.
    """
    from chatservice.cluster.redis import RedisBackplane

    return RedisBackplane(address, node, timers, clock=reactor, prefix=prefix)


class ClusterService(Service):
    """The node's part in the cluster, started and stopped with the server."""

    def __init__(
        self,
        chat: Chat,
        backplane: Backplane,
        accounts: Accounts | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        self.replica = Replica(chat, backplane, accounts, clock)
        self.backplane = backplane

    def startService(self) -> None:
        super().startService()
        log.info("Joining the cluster as node {node}", node=self.backplane.node)
        d = self.replica.start()
        d.addCallbacks(
            lambda _: log.info(
                "Node {node} is in the cluster (epoch {epoch})",
                node=self.backplane.node,
                epoch=self.backplane.epoch,
            ),
            lambda failure: log.failure("Could not join the cluster", failure),
        )

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.replica.stop()


def join_cluster(
    parent: MultiService,
    chat: Chat,
    accounts: Accounts,
    options: Options,
    reactor: IReactorTime,
) -> tuple[Callable[[], tuple[int, int]], BackplaneStats | None]:
    """
    With C{--redis}, make C{chat} a node of the cluster, started and
    stopped under C{parent}. Returns what the metrics count: this node's
    own clients (a replica knows everyone's) and the rooms, and the
    backplane's counts.
    """
    if options["redis"] is None:
        return (lambda: (len(chat.members), len(chat.rooms))), None
    backplane = redis_backplane(
        reactor,
        options["redis"],
        options["node-id"],
        timers_from(options),
        options["redis-prefix"],
    )
    cluster = ClusterService(chat, backplane, accounts, reactor)
    cluster.setServiceParent(parent)
    local = cluster.replica.local
    return (lambda: (len(local), len(chat.rooms))), backplane.stats
