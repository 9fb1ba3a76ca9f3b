"""
C{--log-format json}: log events as one JSON object per line, for log
shippers, written where twistd would write its own log
(L{json_observer_for}).

Twisted's own L{jsonFileLogObserver} writes records for Twisted to read back
(separated by RS characters, with objects it cannot serialize marked
"unpersistable"); a shipper wants flat objects with plain values. Each line
here has C{time} (ISO 8601, UTC), C{level}, C{namespace}, C{text} (the
event's message, formatted) and every field of the event, with addresses as
C{host:port} strings. Events never carry chat text: the server does not log
what people say.
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import IO, Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    formatEvent,
)
from twisted.python.failure import Failure
from twisted.python.logfile import LogFile


def describe(value: object) -> object:
    """
    A JSON-friendly form of one event field.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, IPv4Address):
        return f"{value.host}:{value.port}"
    if isinstance(value, IPv6Address):
        return f"[{value.host}]:{value.port}"
    if isinstance(value, UNIXAddress):
        raw = value.name
        name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return f"unix:{name}" if name else "unix"
    if isinstance(value, list | tuple):
        return [describe(item) for item in value]
    return str(value)


def as_json(event: LogEvent) -> str:
    """
    One event as a line of JSON, newline included.
    """
    fields = {
        key: describe(value)
        for key, value in event.items()
        if not key.startswith("log_") and key not in ("format", "message")
    }
    record: dict[str, Any] = {
        "time": datetime.datetime.fromtimestamp(
            event.get("log_time", 0.0), datetime.UTC
        ).isoformat(timespec="milliseconds"),
        "level": getattr(event.get("log_level"), "name", "info"),
        "namespace": event.get("log_namespace", ""),
        # Formatted with the fields as shown, so that addresses read the
        # same in the text as in the fields.
        "text": formatEvent({**event, **fields}),
    }
    for key, value in fields.items():
        record.setdefault(key, value)
    failure = event.get("log_failure")
    if isinstance(failure, Failure):
        record["traceback"] = failure.getTraceback()
    return json.dumps(record, ensure_ascii=False) + "\n"


def json_observer_to(out: IO[str]) -> ILogObserver:
    return FileLogObserver(out, as_json)


def json_observer() -> ILogObserver:
    """
    For C{twistd --logger chatservice.server.logs.json_observer -n chat}: JSON
    lines on standard output.
    """
    return json_observer_to(sys.stdout)


def json_observer_for(twistd_options: Any) -> ILogObserver:
    """
    JSON lines wherever twistd itself would log, given its options: standard
    output in the foreground (C{-n}) without C{--logfile}, or with
    C{--logfile -}; otherwise the log file (C{twistd.log} by default),
    rotated as twistd rotates it.
    """
    path = twistd_options.get("logfile") or ""
    foreground = bool(twistd_options.get("nodaemon"))
    if path == "-" or (foreground and not path):
        return json_observer_to(sys.stdout)
    return json_observer_to(LogFile.fromFullPath(path or "twistd.log"))
