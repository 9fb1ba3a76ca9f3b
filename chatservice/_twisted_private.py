"""
Every use of Twisted's private API, in one place, each with a test
(tests/test_twisted_private.py) that fails loudly if an upgrade of Twisted
renames what it relies on.
"""

from __future__ import annotations

from twisted.internet import tcp


def has_buffered(transport: tcp.Connection) -> bool:
    """
    Whether C{transport} holds data it has not yet written to its socket:
    its buffer, or the pieces written since it last joined them
    (C{_tempDataLen}, private).
    """
    return bool(transport._tempDataLen or transport.dataBuffer)
