"""
Where Redis is: the address C{--redis} takes, as a Twisted client endpoint
string. Operators write either what Twisted's endpoints take
(C{unix:/run/redis.sock}, C{tcp:host=127.0.0.1:port=6379}) or the URLs Redis
tools take (C{redis://127.0.0.1:6379}, C{unix:///run/redis.sock}); both
become one endpoint string, checked here, before anything starts.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from twisted.internet import endpoints
from twisted.internet.interfaces import IStreamClientEndpoint

DEFAULT_PORT = 6379


def redis_endpoint(address: str) -> str:
    """
    The client endpoint string for the Redis at C{address}; raises
    L{ValueError} saying what is wrong with it.
    """
    address = address.strip()
    if not address:
        raise ValueError("empty")
    if address.startswith(("redis://", "unix://")):
        url = urlsplit(address)
        if url.scheme == "unix":
            if not url.path:
                raise ValueError("no socket path")
            return f"unix:path={_escaped(unquote(url.path))}"
        if url.path not in ("", "/", "/0"):
            raise ValueError("only database 0 is supported")
        if url.username or url.password:
            raise ValueError("passwords are not supported; use a UNIX socket")
        host = url.hostname or "127.0.0.1"
        try:
            port = url.port or DEFAULT_PORT
        except ValueError:
            raise ValueError("not a port number") from None
        return f"tcp:host={_escaped(host)}:port={port}"
    if address.startswith("rediss://"):
        raise ValueError("TLS to Redis is not supported")
    from twisted.internet import reactor

    try:
        endpoint: IStreamClientEndpoint = endpoints.clientFromString(reactor, address)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"not a client endpoint: {e}") from None
    del endpoint
    return address


def _escaped(text: str) -> str:
    """C{text} as one value of an endpoint string."""
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")
