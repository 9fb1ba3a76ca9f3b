"""
The limits that keep one client from costing others anything, and how
connections are grouped per address for them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from twisted.internet.interfaces import IAddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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
    @ivar flood_exempt: networks whose connections flood control leaves
        alone (trusted bots, bridges, a benchmark's senders).
    """

    max_line: int = 4096
    flood_rate: float = 5.0
    flood_burst: int = 20
    flood_queue: int = 100
    sendq: int = 1024 * 1024
    max_clients: int = 0
    max_per_ip: int = 16
    idle_timeout: float = 0
    flood_exempt: tuple[Network, ...] = ()

    def flood_limited(self, address: IAddress) -> bool:
        """
        Whether flood control applies to a connection from C{address}.
        """
        if self.flood_rate <= 0:
            return False
        if not self.flood_exempt:
            return True
        ip = _ip(address)
        return ip is None or not any(ip in network for network in self.flood_exempt)


def _ip(address: IAddress) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    host = getattr(address, "host", None)
    if not isinstance(host, str):
        return None
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_key(address: IAddress) -> str | None:
    """
    The key under which C{address} counts against C{max_per_ip}: the IPv4
    address, or the IPv6 /64 (one customer's allocation, which can hand out
    addresses at will). Addresses without an IP (UNIX sockets) have none.
    """
    ip = _ip(address)
    if ip is None:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
