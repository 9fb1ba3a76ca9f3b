"""
The C{twistd chat} plugin's C{makeService}: it builds the chat, the
database and a listener for each C{--port} (and C{--metrics}) from the
options, under one L{ChatService}.

The options are L{chatservice.server.options}; the service and the
listeners are L{chatservice.server.service}. What is left here is the
wiring, and the one thing twistd's order of work asks for: run by twistd,
the listeners are bound before C{makeService} returns (L{listen_now}).
"""

from __future__ import annotations

from twisted.application.service import IService
from twisted.internet import endpoints
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.threads import deferToThread

from chatservice.core.accounts import Account, Accounts
from chatservice.core.chat import Chat
from chatservice.core.history import History
from chatservice.core.server_operators import ServerOperators
from chatservice.core.stats import Stats
from chatservice.frontends.admission import Admission
from chatservice.frontends.irc.protocol import IRCFactory
from chatservice.frontends.line.protocol import LineFactory
from chatservice.server import tls
from chatservice.server.cluster import join_cluster
from chatservice.server.logs import json_observer_for
from chatservice.server.options import Options, fatal, given, limits_from, reason
from chatservice.server.service import ChatService, Listener
from chatservice.storage.database import Database, DatabaseError, check

# twistd finds Options and makeService here (twisted/plugins/chat_plugin.py).
__all__ = ["Options", "listen", "listen_now", "makeService"]


def makeService(options: Options) -> IService:
    """
    The composition root: one chat core (rooms, accounts, history), handed to
    every front end's factory, behind every listening endpoint.
    """
    from twisted.internet import reactor

    path = options["database"]
    try:
        check(path)
    except DatabaseError as e:
        fatal(f"--database: {e}")
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
    database = Database(
        path,
        history if history is not None else History(),
        registered,
        reactor,
        max_per_room=options["history-max-per-room"],
        days=options["history-days"],
        stats=stats,
        server_bans=chat.server_bans,
        audit=chat.audit,
        load_rooms=chat.load_rooms,
    )
    # Registered rooms are written through as they change.
    chat.save_room = database.save_room
    chat.forget_room = database.forget_room
    accounts = Accounts(
        chat,
        in_thread=lambda f, *args: deferToThread(f, *args),
        save=database.save_account,
        clock=reactor.seconds,
        accounts=registered,
        password_min=options["password-min"],
        password_max=options["password-max"],
        # Other servers sharing a PostgreSQL database register accounts
        # and change passwords too: read them there. A SQLite file is this
        # server's alone, and all of it is in memory.
        lookup=database.account if database.shared else None,
    )
    operators = ServerOperators(
        chat, accounts, options["operator"], options.get("operators-listed", ())
    )
    admission = Admission(limits_from(options), stats, reactor, chat.server_bans)
    factory = LineFactory(chat, admission, accounts, operators=operators)
    service = ChatService(
        chat=chat,
        admission=admission,
        database=database,
        grace=options["shutdown-grace"],
        handle_signals=True,
        motd_path=options["motd"],
        operators=operators,
        operators_path=options["operators-file"],
        log_observer=(
            json_observer_for(options.parent or {})
            if options["log-format"] == "json"
            else None
        ),
    )
    # The first child, so that it starts before the listeners.
    database.setServiceParent(service)
    counts, backplane = join_cluster(service, chat, accounts, options, reactor)
    for description in options["port"]:
        listen(service, "Chat", "--port", description, factory)
    if options["irc-port"]:
        irc = IRCFactory(
            chat,
            admission,
            options["irc-server-name"],
            accounts,
            operators=operators,
        )
        for description in options["irc-port"]:
            listen(service, "IRC", "--irc-port", description, irc)
    if options["web"]:
        from chatservice.frontends.web.session import WebFactory
        from chatservice.frontends.web.site import web_site

        web = web_site(
            WebFactory(chat, admission, accounts, operators=operators),
            options["web-origin"],
        )
        for description in options["web"]:
            listen(service, "Web", "--web", description, web)
    if options["metrics"] is not None:
        from chatservice.server.metrics import metrics_site

        site = metrics_site(stats, counts, reactor, backplane)
        listen(service, "Metrics", "--metrics", options["metrics"], site)
    if options.under_twistd:
        listen_now(service)
    return service


def listen(
    service: ChatService,
    what: str,
    option: str,
    description: str,
    factory: IProtocolFactory,
) -> Listener:
    """
    Add to C{service} a listener for C{factory} on the endpoint string
    C{description}, given to C{option}. An C{ssl:} string becomes a TCP
    port with TLS around C{factory}, its certificate one that SIGHUP
    re-reads.
    """
    from twisted.internet import reactor

    endpoint = endpoints.serverFromString(reactor, description)
    if isinstance(endpoint, endpoints.SSL4ServerEndpoint):
        endpoint, certificate = tls.tls_listener(reactor, description)
        service.certificates.append(certificate)
        factory = certificate.wrap(factory)
    listener = Listener(what, given(option, description), endpoint, factory)
    listener.setServiceParent(service)
    return listener


def listen_now(service: ChatService) -> None:
    """
    Bind every listener of C{service} now; stop twistd with one line naming
    the first that cannot listen, and why.

    twistd starts the service only after it has redirected standard error
    to its log and, unless C{-n}, forked into the background; a port that
    could not be had then would reach the operator as two tracebacks in
    the log, or as the first hundred bytes of one. Bound here, before any
    of that, the error is one line on the terminal and nothing has
    started. (The listening sockets cross twistd's fork, as its reactor
    does.) A relative C{unix:} path is therefore relative to the directory
    twistd was started in, even with C{--rundir}.
    """
    for listener in service.listeners():
        try:
            listener.bind()
        except Exception as e:
            fatal(f"{listener.source}: cannot listen: {reason(e, file_name=False)}")
