"""
The limits that keep one client from costing others anything, and how
connections are grouped per address for them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from twisted.internet.interfaces import IAddress


@dataclass(frozen=True, slots=True)
class Limits:
    """
    Every per-connection limit the server enforces; 0 means no limit.

    @ivar max_line: longest line in bytes (without its line ending).
    @ivar flood_rate: lines per second a connection may send on average;
        0 turns flood control off.
    @ivar flood_burst: lines a connection may send at once before the rate
        applies.
    @ivar flood_queue: lines held back for a flooding connection before it
        is disconnected.
    @ivar sendq: bytes that may wait for a connection that does not read,
        beyond what the socket buffers, before it is disconnected.
    @ivar max_clients: connections in all.
    @ivar max_per_ip: connections from one address (an IPv6 /64 counts as
        one address).
    @ivar idle_timeout: seconds without input before a connection is closed.
    """

    max_line: int = 4096
    flood_rate: float = 5.0
    flood_burst: int = 20
    flood_queue: int = 100
    sendq: int = 1024 * 1024
    max_clients: int = 0
    max_per_ip: int = 16
    idle_timeout: float = 0


def address_key(address: IAddress) -> str | None:
    """
    The key under which C{address} counts against C{max_per_ip}: the IPv4
    address, or the IPv6 /64 (one customer's allocation, which can hand out
    addresses at will). Addresses without an IP (UNIX sockets) have none.
    """
    host = getattr(address, "host", None)
    if not isinstance(host, str):
        return None
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
