"""
A token bucket: how many lines a connection may have handled now.
"""

from __future__ import annotations


class TokenBucket:
    """
    C{burst} tokens to start with, refilled at C{rate} a second, never more
    than C{burst}. One token is one line.

    Tokens are counted in batches (L{take} grants up to C{n} at once), so a
    chunk of many lines costs one call, not one per line.
    """

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, n: int, now: float) -> int:
        """
        Take up to C{n} whole tokens and return how many were taken.
        """
        self._refill(now)
        # A token due "now" may be a rounding error short of whole.
        granted = min(n, int(self.tokens + 1e-9))
        self.tokens -= granted
        return granted

    def wait(self, now: float) -> float:
        """
        Seconds until the next whole token.
        """
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate)
