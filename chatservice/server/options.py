"""
The C{twistd chat} command line: its options, how each value is checked,
and how a problem with one reaches the operator.

Run by twistd, a problem is one line on standard error that names the
option and its value and says why, and twistd exits with status 1, in the
foreground and as a daemon. twistd itself would print the whole usage text
(over sixty lines, under C{Usage: twistd [options]}) before the error, so
L{Options.parseOptions} reports it instead, with L{fatal}. Parsed by
anything else (the tests), the options raise L{usage.UsageError} as usual.
"""

from __future__ import annotations

import ipaddress
import math
import re
import shlex
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from twisted.internet import endpoints
from twisted.internet.error import CannotListenError
from twisted.python import usage

from chatservice import __version__
from chatservice.cluster.backplane import Timers, default_node_id
from chatservice.core import names
from chatservice.core.accounts import PASSWORD_MAX, PASSWORD_MIN
from chatservice.core.history import DEFAULT_REPLAY, HISTORY_MAX
from chatservice.frontends.limits import Limits
from chatservice.server.motd import MotdError, read_motd
from chatservice.server.operators_file import OperatorsFileError, read_operators
from chatservice.server.ports import TCP_ENDPOINTS, port_problem

PROGRAM = "twistd chat"
DEFAULT_PORT = "tcp:12345:interface=127.0.0.1"
DEFAULT_SHUTDOWN_GRACE = 5.0
LOG_FORMATS = ("text", "json")


def fatal(message: str) -> NoReturn:
    """
    Stop C{twistd chat} with C{message}, one line on standard error, and
    exit status 1. Only before twistd starts logging: after that, standard
    error is the log.
    """
    raise SystemExit(f"{PROGRAM}: {message}")


def _uncapitalized(text: str) -> str:
    return text[:1].lower() + text[1:]


def reason(error: BaseException, *, file_name: bool = True) -> str:
    """
    What went wrong, to follow a colon: the system's words for an
    C{OSError} (C{address already in use}), also inside a
    L{CannotListenError}; else the exception's message. With C{file_name},
    an C{OSError}'s file comes first; a listener leaves it out, since its
    address is named already and the file would be a lock file's.
    """
    if isinstance(error, CannotListenError):
        cause = error.socketError
        if isinstance(cause, BaseException):
            return reason(cause, file_name=False)
        return _uncapitalized(str(cause))
    if isinstance(error, OSError) and error.strerror:
        why = _uncapitalized(error.strerror)
        if file_name and error.filename is not None:
            return f"{error.filename}: {why}"
        return why
    return _uncapitalized(str(error) or type(error).__name__)


def given(option: str, value: str) -> str:
    """
    C{option} with C{value}, as the operator would type them.
    """
    return f"{option} {shlex.quote(value)}"


class OptionError(usage.UsageError):
    """
    The value given to an option is not one it takes.
    """

    def __init__(self, option: str, value: str, why: str) -> None:
        super().__init__(f"{given(option, value)}: {why}")


@dataclass(frozen=True, slots=True)
class Number:
    """
    The numbers an option takes: whole or not, and the range.
    """

    whole: bool
    minimum: float = 0
    maximum: float | None = None

    def read(self, value: str) -> int | float:
        """
        C{value} as a number in range; raises L{ValueError} saying why not.
        """
        number: int | float
        try:
            number = int(value) if self.whole else float(value)
        except ValueError:
            raise ValueError(
                "not a whole number" if self.whole else "not a number"
            ) from None
        if math.isnan(number):
            raise ValueError("not a number")
        if number < self.minimum:
            raise ValueError(f"must be at least {self.minimum:g}")
        if self.maximum is not None and number > self.maximum:
            raise ValueError(f"must be at most {self.maximum:g}")
        if math.isinf(number):
            raise ValueError("must be finite")
        return number


COUNT = Number(whole=True)
POSITIVE_AMOUNT = Number(whole=False, minimum=0.001)
_TIMERS = Timers()
NODE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
REDIS_PREFIX = re.compile(r"[!-~]{1,64}")
POSITIVE = Number(whole=True, minimum=1)
AMOUNT = Number(whole=False)
REPLAY = Number(whole=True, maximum=HISTORY_MAX)


def _checked(name: str, read: Callable[[str], Any]) -> Callable[[str], Any]:
    """
    C{read}, for the option C{--name}: its L{ValueError} becomes an
    L{OptionError} that names the option and the value.
    """

    def coerce(value: str) -> Any:
        try:
            return read(value)
        except ValueError as e:
            raise OptionError(f"--{name}", value, str(e)) from None

    return coerce


def _number(name: str, default: object, doc: str, kind: Number) -> list[Any]:
    return [name, None, default, doc, _checked(name, kind.read)]


def _log_format(value: str) -> str:
    if value not in LOG_FORMATS:
        raise ValueError(f"must be {' or '.join(LOG_FORMATS)}")
    return value


def _database(value: str) -> str:
    """
    C{value}, if it is a SQLite path or a PostgreSQL URL that libpq can
    read (nothing is opened yet: the database is checked as the server
    starts); otherwise an L{OptionError} that shows no password.
    """
    from chatservice.storage.dialect import is_postgresql_url, redacted

    if "://" not in value:
        return value
    if not is_postgresql_url(value):
        raise OptionError(
            "--database",
            redacted(value),
            "not a SQLite file or a postgresql:// URL",
        )
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(value)
    except ProgrammingError as e:
        # libpq quotes the URL in some of its messages.
        why = " ".join(str(e).split()).replace(value, redacted(value))
        raise OptionError(
            "--database", redacted(value), f"not a PostgreSQL URL: {why}"
        ) from None
    return value


def endpoint(option: str, description: str) -> str:
    """
    C{description}, if it is a server endpoint string that names a port in
    range; otherwise an L{OptionError} for C{option}.
    """
    from twisted.internet import reactor

    try:
        parsed = endpoints.serverFromString(reactor, description)
        problem = (
            port_problem(description) if isinstance(parsed, TCP_ENDPOINTS) else None
        )
    except Exception as e:
        raise OptionError(option, description, reason(e)) from None
    if problem is not None:
        raise OptionError(option, description, problem)
    return description


_DEFAULTS = Limits()


class Options(usage.Options):
    synopsis = "[--port ENDPOINT]... [options]"
    longdesc = (
        "Run the chatservice chat server. Clients connect with nc, telnet or "
        "chat-client. Listens on " + DEFAULT_PORT + " unless --port is given. "
        "The wire protocol and every limit are documented in docs/protocol.md."
    )
    optParameters: list[Any] = [
        _number(
            "max-line",
            _DEFAULTS.max_line,
            "Longest line, in bytes, a client may send; longer lines are "
            "refused with an error and the connection stays open.",
            POSITIVE,
        ),
        _number(
            "flood-rate",
            _DEFAULTS.flood_rate,
            "Lines per second one connection may send on average; faster "
            "lines are delayed. 0 turns flood control off.",
            AMOUNT,
        ),
        _number(
            "flood-burst",
            _DEFAULTS.flood_burst,
            "Lines one connection may send at once before --flood-rate applies.",
            POSITIVE,
        ),
        _number(
            "flood-queue",
            _DEFAULTS.flood_queue,
            "Lines held back for a flooding connection before it is told and "
            "disconnected.",
            POSITIVE,
        ),
        _number(
            "sendq",
            _DEFAULTS.sendq,
            "Bytes that may wait for a client that does not read (beyond the "
            "socket's buffer) before it is disconnected.",
            POSITIVE,
        ),
        _number(
            "max-clients",
            _DEFAULTS.max_clients,
            "Most connections in all; 0 for no limit.",
            COUNT,
        ),
        _number(
            "max-per-ip",
            _DEFAULTS.max_per_ip,
            "Most connections from one IP address (an IPv6 /64 counts as one); "
            "0 for no limit.",
            COUNT,
        ),
        [
            "database",
            None,
            "chat.sqlite3",
            "SQLite file for room history and accounts, created if missing; "
            ":memory: keeps them only while the server runs. Or a PostgreSQL "
            "database, as a postgresql:// URL (libpq's), such as "
            "postgresql://chat@/chat?host=/run/postgresql.",
            _database,
        ],
        _number(
            "history-replay",
            DEFAULT_REPLAY,
            f"Lines of history replayed to whoever enters a room (at most "
            f"{HISTORY_MAX}).",
            REPLAY,
        ),
        _number(
            "history-max-per-room",
            0,
            "Keep at most this many lines per room on disk; 0 keeps all.",
            COUNT,
        ),
        _number(
            "history-days",
            0,
            "Keep history for this many days; 0 keeps it for ever.",
            AMOUNT,
        ),
        [
            "log-format",
            None,
            "text",
            "text, or json for one JSON object per line (for log shippers), "
            "written where twistd logs.",
            _checked("log-format", _log_format),
        ],
        _number(
            "shutdown-grace",
            DEFAULT_SHUTDOWN_GRACE,
            "On SIGTERM or SIGINT, seconds clients have to take their last "
            "lines before their connections are aborted.",
            AMOUNT,
        ),
        [
            "motd",
            None,
            None,
            "Show the text FILE (the message of the day) to every client after "
            "the welcome; re-read on SIGHUP.",
        ],
        [
            "operators-file",
            None,
            None,
            "Make the accounts FILE lists (one a line; # starts a comment) "
            "server operators, besides those of --operator; re-read on SIGHUP.",
        ],
        _number(
            "password-min",
            PASSWORD_MIN,
            "Fewest characters a new account password may have.",
            POSITIVE,
        ),
        _number(
            "password-max",
            PASSWORD_MAX,
            "Most characters a new account password may have.",
            POSITIVE,
        ),
        _number(
            "idle-timeout",
            _DEFAULTS.idle_timeout,
            "Close connections that send nothing for this many seconds; 0 "
            "(the default) never does.",
            AMOUNT,
        ),
        _number(
            "lease",
            _TIMERS.lease,
            "With --redis: seconds a node's hold on its users' nicknames lasts "
            "unless renewed; a node cut off from Redis for longer, less "
            "--lease-margin, drops its users.",
            POSITIVE_AMOUNT,
        ),
        _number(
            "lease-margin",
            _TIMERS.fence_margin,
            "With --redis: how long before its lease ends a cut-off node "
            "drops its users.",
            POSITIVE_AMOUNT,
        ),
        _number(
            "heartbeat",
            _TIMERS.heartbeat,
            "With --redis: seconds between a node's heartbeats.",
            POSITIVE_AMOUNT,
        ),
        _number(
            "dead-after",
            _TIMERS.dead_after,
            "With --redis: a node silent this many seconds is lost, and its "
            "users are seen to quit.",
            POSITIVE_AMOUNT,
        ),
    ]

    optFlags = [
        [
            "no-history",
            None,
            "Record no room history at all: nothing is replayed, stored or "
            "shown by /history. Accounts are still kept in the database.",
        ],
    ]

    # Whether twistd parsed these options from its command line: then
    # problems are reported to the operator here, and the listeners are
    # bound before twistd daemonizes (see chatservice.server.tap).
    under_twistd = False

    def __init__(self) -> None:
        super().__init__()
        self["port"] = []
        self["irc-port"] = []
        self["irc-server-name"] = socket.gethostname()
        self["flood-exempt"] = []
        self["operator"] = []
        self["metrics"] = None
        self["web"] = []
        self["web-origin"] = []
        self["redis"] = None
        self["node-id"] = default_node_id()
        self["redis-prefix"] = "chat:"

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        # twistd sets the parent, its own options, before it parses these.
        self.under_twistd = self.parent is not None
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            if not self.under_twistd:
                raise
            fatal(_uncapitalized(str(e)))

    def opt_version(self) -> NoReturn:
        """
        Display chatservice's version and exit.
        """
        print(f"{PROGRAM} (chatservice) {__version__}")
        sys.exit(0)

    def opt_flood_exempt(self, network: str) -> None:
        try:
            self["flood-exempt"].append(ipaddress.ip_network(network, strict=False))
        except ValueError as e:
            raise OptionError("--flood-exempt", network, reason(e)) from None

    opt_flood_exempt.__doc__ = (
        "Leave connections from NETWORK (an address or CIDR block, such as "
        "127.0.0.1 or 2001:db8::/32) out of flood control: trusted bots, "
        "bridges, a benchmark's senders. May be given several times."
    )

    def opt_operator(self, account: str) -> None:
        try:
            self["operator"].append(names.nickname(account))
        except names.InvalidName as e:
            raise OptionError("--operator", account, f"not a nickname: {e}") from None

    opt_operator.__doc__ = (
        "Make the account ACCOUNT (a registered nickname) a server operator: "
        "it may become one with /oper ACCOUNT PASSWORD (IRC's OPER). May be "
        "given several times."
    )

    def opt_port(self, description: str) -> None:
        self["port"].append(endpoint("--port", description))

    opt_port.__doc__ = (
        "Listen on ENDPOINT, a Twisted server endpoint string such as "
        "tcp:12345:interface=0.0.0.0, tcp6:12345:interface=\\:\\:1, "
        "unix:/tmp/chat.sock or ssl:6697:privateKey=key.pem:certKey=cert.pem; "
        "reuseport:12345 is a TCP port that several processes share. "
        "May be given several times. [default: " + DEFAULT_PORT + "]"
    )
    opt_p = opt_port

    def opt_irc_port(self, description: str) -> None:
        self["irc-port"].append(endpoint("--irc-port", description))

    opt_irc_port.__doc__ = (
        "Serve IRC clients on ENDPOINT, a server endpoint string such as "
        "tcp:6667:interface=127.0.0.1 (ssl:6697:... for IRC over TLS); in the "
        "same rooms as every other client. May be given several times; off "
        "unless given."
    )

    def opt_irc_server_name(self, name: str) -> None:
        if not name or any(c.isspace() or c in ":!@," for c in name):
            raise OptionError("--irc-server-name", name, "not a server name")
        self["irc-server-name"] = name

    opt_irc_server_name.__doc__ = (
        "The server's name in IRC prefixes and numerics. [default: the host name]"
    )

    def opt_metrics(self, description: str) -> None:
        self["metrics"] = endpoint("--metrics", description)

    opt_metrics.__doc__ = (
        "Serve Prometheus metrics at /metrics on ENDPOINT, a server endpoint "
        "string such as tcp:9122:interface=127.0.0.1; off unless given. Keep "
        "it away from the public: it is plain HTTP."
    )

    def opt_web(self, description: str) -> None:
        self["web"].append(endpoint("--web", description))

    opt_web.__doc__ = (
        "Serve the web client at / and its WebSocket at /ws on ENDPOINT, a "
        "server endpoint string such as tcp:8080:interface=127.0.0.1 "
        "(ssl:8443:... for HTTPS and wss://); in the same rooms as every other "
        "client. May be given several times; off unless given."
    )

    def opt_web_origin(self, origin: str) -> None:
        from chatservice.frontends.web.site import origin_of

        normalized = origin_of(origin)
        if normalized is None:
            raise OptionError(
                "--web-origin", origin, "not an origin such as https://chat.example.org"
            )
        self["web-origin"].append(normalized)

    opt_web_origin.__doc__ = (
        "Let web pages from ORIGIN (such as https://chat.example.org) open the "
        "WebSocket; may be given several times. [default: the host the "
        "browser asked for]"
    )

    def opt_redis(self, address: str) -> None:
        """
        Join a cluster of chat processes that share Redis at ADDRESS (a
        Twisted client endpoint such as unix:/run/redis.sock or
        tcp:host=127.0.0.1:port=6379, or a redis:// URL); needs a
        postgresql:// --database. See docs/operations.md, "Running several
        servers".
        """
        from chatservice.cluster.redis import endpoint_from

        try:
            endpoint_from(address)
        except ValueError as e:
            raise OptionError("--redis", address, str(e)) from None
        self["redis"] = address

    def opt_node_id(self, name: str) -> None:
        """
        Name this process in the cluster; unique among its nodes. [default:
        the host name and the process id]
        """
        if not NODE_ID.fullmatch(name):
            raise OptionError(
                "--node-id", name, "not 1 to 64 letters, digits, dots, - or _"
            )
        self["node-id"] = name

    def opt_redis_prefix(self, prefix: str) -> None:
        """
        Put PREFIX before every Redis key and channel of the cluster, so
        that several clusters (or test runs) can share one Redis; every
        node of one cluster needs the same. [default: chat:]
        """
        if not REDIS_PREFIX.fullmatch(prefix):
            raise OptionError(
                "--redis-prefix", prefix, "not 1 to 64 printable ASCII characters"
            )
        self["redis-prefix"] = prefix

    def postOptions(self) -> None:
        self._check_cluster()
        if self["password-min"] > self["password-max"]:
            raise OptionError(
                "--password-min",
                str(self["password-min"]),
                f"more than --password-max ({self['password-max']})",
            )
        if not self["port"]:
            self["port"] = [DEFAULT_PORT]
        if self["motd"] is not None:
            # Like the database, a bad file stops the server with one line,
            # not the whole usage text.
            try:
                self["motd-lines"] = read_motd(self["motd"])
            except MotdError as e:
                fatal(f"--motd: {e}")
        self["operators-listed"] = []
        if self["operators-file"] is not None:
            try:
                self["operators-listed"] = read_operators(self["operators-file"])
            except OperatorsFileError as e:
                fatal(f"--operators-file: {e}")

    def _check_cluster(self) -> None:
        if self["redis"] is None:
            return
        from chatservice.storage.dialect import is_postgresql_url, redacted

        database = self["database"]
        if not is_postgresql_url(database):
            # Each process's own SQLite file would split the history and
            # let one account be registered twice.
            raise OptionError(
                "--database",
                redacted(database),
                "with --redis it must be a postgresql:// URL shared by every "
                "node, not a SQLite file",
            )
        if 2 * self["heartbeat"] > self["dead-after"]:
            # A node must be able to miss a beat before it counts as lost;
            # and one whose every beat finds its last too old judges nobody
            # (see the heartbeat in chatservice.cluster.redis), so dead
            # nodes would never be found.
            raise OptionError(
                "--heartbeat",
                str(self["heartbeat"]),
                f"more than half of --dead-after ({self['dead-after']})",
            )
        if self["lease-margin"] >= self["lease"]:
            raise OptionError(
                "--lease-margin",
                str(self["lease-margin"]),
                f"not less than --lease ({self['lease']})",
            )


def timers_from(options: Options) -> Timers:
    """The cluster's timers the options set."""
    return Timers(
        heartbeat=options["heartbeat"],
        dead_after=options["dead-after"],
        lease=options["lease"],
        fence_margin=options["lease-margin"],
    )


def limits_from(options: Options) -> Limits:
    """
    The connection limits the options set.
    """
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
