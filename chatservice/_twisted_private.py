"""
The private attributes of Twisted that chatservice reads, each behind one
function here, and nowhere else.

Twisted does not promise to keep an attribute whose name starts with an
underscore. Reading it in one place means that a Twisted release that
renames it breaks one function, which C{tests/test_twisted_private.py}
calls directly, rather than a fast path deep in a protocol that might fail
quietly or only under load.

Only one is left: the TLS listeners, the listener services and the port
checks use public API (L{chatservice.server.tls},
L{chatservice.server.service}, L{chatservice.server.ports}).
"""

from __future__ import annotations

from twisted.internet import tcp


def has_buffered(transport: tcp.Connection) -> bool:
    """
    Whether C{transport} holds data it has not yet written to its socket:
    its buffer, or the pieces written since it last joined them
    (C{_tempDataLen}, private).

    L{FileDescriptor} keeps written data in two places: a list of recent
    writes, counted by C{_tempDataLen}, and C{dataBuffer}, which the list is
    joined into when the socket is writable. Anything in either means that
    bytes sent to the socket directly would overtake them.
    """
    return bool(transport._tempDataLen or transport.dataBuffer)
