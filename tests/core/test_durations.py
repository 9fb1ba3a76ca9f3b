"""How long a ban or mute lasts, as typed."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chatservice.core import errors
from chatservice.core.durations import DURATION_MAX, looks_like_duration, parse_duration


class DurationTests(SynchronousTestCase):
    def test_units(self) -> None:
        cases = {
            "30": 30,
            "30s": 30,
            "10m": 600,
            "2h": 7200,
            "7D": 604800,
            "1w": 604800,
        }
        for text, seconds in cases.items():
            self.assertEqual(parse_duration(text), seconds, text)

    def test_forever(self) -> None:
        for text in ("0", "forever", "Permanent"):
            self.assertIsNone(parse_duration(text))

    def test_refused(self) -> None:
        """Past, absurdly far, and malformed durations are refused."""
        for text in ("-5m", "", "5x", "1.5h", "9999999999999d", "3661d", "m", "5 m"):
            self.assertRaises(errors.BadDuration, parse_duration, text)
        self.assertEqual(parse_duration(f"{int(DURATION_MAX)}"), DURATION_MAX)

    def test_looksLike(self) -> None:
        self.assertTrue(looks_like_duration("10m"))
        self.assertTrue(looks_like_duration("forever"))
        self.assertFalse(looks_like_duration("spamming"))
