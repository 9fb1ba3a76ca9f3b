"""
Durations as moderators type them (L{chatservice.core.durations}).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chatservice.core import errors
from chatservice.core.durations import (
    MAX_SECONDS,
    check_duration,
    describe,
    parse_duration,
)


class ParseDurationTests(SynchronousTestCase):
    def test_units(self) -> None:
        for text, seconds in [
            ("30s", 30),
            ("10m", 600),
            ("2h", 7200),
            ("7d", 7 * 86400),
            ("1w", 7 * 86400),
            ("1h30m", 5400),
            ("45", 45),
            (" 2H ", 7200),
        ]:
            self.assertEqual(parse_duration(text), seconds, text)

    def test_forever(self) -> None:
        """C{0} and C{forever} mean no expiry."""
        for text in ("0", "forever", "FOREVER", "permanent"):
            self.assertIsNone(parse_duration(text), text)

    def test_malformed(self) -> None:
        for text in ("", "abc", "10x", "-5m", "1.5h", "m10", "10 m", "9" * 20, "h"):
            e = self.assertRaises(errors.BadDuration, parse_duration, text)
            self.assertEqual(e.text, text)

    def test_noTime(self) -> None:
        """A duration of no time that is not C{0} is refused, not taken as ever."""
        self.assertRaises(errors.BadDuration, parse_duration, "0s")
        self.assertRaises(errors.BadDuration, parse_duration, "0h0m")

    def test_farFuture(self) -> None:
        """At most ten years."""
        self.assertEqual(parse_duration("3650d"), MAX_SECONDS)
        e = self.assertRaises(errors.BadDuration, parse_duration, "3651d")
        self.assertIn("ten years", e.reason)
        self.assertRaises(errors.BadDuration, parse_duration, "999999999999w")

    def test_check(self) -> None:
        """Numbers from a request are held to the same bounds."""
        self.assertIsNone(check_duration(None))
        self.assertEqual(check_duration(60), 60.0)
        for bad in (0, -1, MAX_SECONDS + 1, float("nan"), float("inf")):
            self.assertRaises(errors.BadDuration, check_duration, bad)

    def test_describe(self) -> None:
        for seconds, text in [(90, "1m30s"), (7200, "2h"), (86400 * 8, "1w1d")]:
            self.assertEqual(describe(seconds), text)
            self.assertEqual(parse_duration(text), seconds)
