"""
The masks C{chat-bench --bans} sets: valid, and matching none of a run's
connections, so that the lists cost what checking them costs and nothing
else.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chatservice.bench.moderator import masks
from chatservice.core.masks import Identity, parse_mask


class MaskTests(SynchronousTestCase):
    def test_validAndMatchNobody(self) -> None:
        made = masks(1000, "ban")
        self.assertEqual(len(set(made)), 1000)
        parsed = [parse_mask(text) for text in made]
        self.assertEqual(len({mask.text for mask in parsed}), 1000)
        for nick in ("guest1", "guest999", "benchmoderator"):
            who = Identity(nick, nick, "127.0.0.1", None)
            self.assertEqual([m for m in parsed if m.matches(who)], [])

    def test_everyKind(self) -> None:
        made = masks(4, "mute")
        self.assertEqual(made[0], "mutetroll0")
        self.assertTrue(made[1].startswith("*!*@198.51."))
        self.assertTrue(made[2].endswith("/24"))
        self.assertTrue(made[3].startswith("$a:"))
