"""
Tests for the web client's slash commands (C{static/commands.js}): each
typed line and the request it makes, run in Node.js, which loads the
module as the browser does. Without C{node} these tests are skipped; the
browser tests type some of the same lines.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from chatservice.frontends.web.site import static_path

_RUN = """
import { parseLine } from %s;
const lines = JSON.parse(process.argv[1]);
const here = { kind: "room", name: "lobby" };
process.stdout.write(JSON.stringify(lines.map((line) => parseLine(line, here))));
"""


def parse_lines(lines: list[str]) -> list[dict[str, Any]]:
    """What C{parseLine} makes of each of C{lines}, typed in C{lobby}."""
    node = shutil.which("node")
    if node is None:
        raise SkipTest("node is not installed")
    module = static_path().child("commands.js").path
    script = _RUN % json.dumps("file://" + module)
    found = subprocess.run(
        [node, "--input-type=module", "-e", script, json.dumps(lines)],
        capture_output=True,
        check=True,
        text=True,
        timeout=60,
    )
    result: list[dict[str, Any]] = json.loads(found.stdout)
    return result


class ModerationCommandTests(SynchronousTestCase):
    def assertRequests(self, cases: dict[str, dict[str, Any] | None]) -> None:
        """Each typed line makes its request (None: a usage message)."""
        lines = list(cases)
        for line, parsed in zip(lines, parse_lines(lines), strict=True):
            wanted = cases[line]
            if wanted is None:
                self.assertIn("error", parsed, line)
            else:
                self.assertEqual(parsed, {"request": wanted}, line)

    def test_masks(self) -> None:
        self.assertRequests(
            {
                "/ban ann": {"type": "ban", "room": "lobby", "mask": "ann"},
                "/ban *!*@10.0.0.0/8 2h flooding the room": {
                    "type": "ban",
                    "room": "lobby",
                    "mask": "*!*@10.0.0.0/8",
                    "duration": "2h",
                    "reason": "flooding the room",
                },
                "/ban $a:troll forever": {
                    "type": "ban",
                    "room": "lobby",
                    "mask": "$a:troll",
                    "duration": "forever",
                },
                "/mute bob two words": {
                    "type": "mute",
                    "room": "lobby",
                    "mask": "bob",
                    "reason": "two words",
                },
                "/mute bob 10M": {
                    "type": "mute",
                    "room": "lobby",
                    "mask": "bob",
                    "duration": "10M",
                },
                "/ban bob -5m": {
                    "type": "ban",
                    "room": "lobby",
                    "mask": "bob",
                    "duration": "-5m",
                },
                "/ban bob forever 3 strikes": {
                    "type": "ban",
                    "room": "lobby",
                    "mask": "bob",
                    "duration": "forever",
                    "reason": "3 strikes",
                },
                "/unban ann": {"type": "unban", "room": "lobby", "mask": "ann"},
                "/unmute bob": {"type": "unmute", "room": "lobby", "mask": "bob"},
                "/bans": {"type": "bans", "room": "lobby"},
                "/mutes other": {"type": "mutes", "room": "other"},
                "/ban": None,
                "/unban a b": None,
                "/voice cy": {"type": "voice", "room": "lobby", "nick": "cy"},
                "/devoice cy": {"type": "devoice", "room": "lobby", "nick": "cy"},
                "/invite cy": {"type": "invite", "room": "lobby", "nick": "cy"},
                "/invite cy dev": {"type": "invite", "room": "dev", "nick": "cy"},
                "/join dev sesame": {"type": "join", "room": "dev", "key": "sesame"},
                "/join dev": {"type": "join", "room": "dev"},
            }
        )

    def test_serverBans(self) -> None:
        """/sban reads the word after the mask as /ban does."""
        self.assertRequests(
            {
                "/sban 10.0.0.0/8 2h flooding": {
                    "type": "server_ban",
                    "mask": "10.0.0.0/8",
                    "duration": "2h",
                    "reason": "flooding",
                },
                "/sban $a:troll spam for 2h": {
                    "type": "server_ban",
                    "mask": "$a:troll",
                    "reason": "spam for 2h",
                },
                "/sban 1.2.3.4 -5m": {
                    "type": "server_ban",
                    "mask": "1.2.3.4",
                    "duration": "-5m",
                },
                "/sban": None,
                "/unsban 1.2.3.4": {"type": "server_unban", "mask": "1.2.3.4"},
            }
        )

    def test_room(self) -> None:
        def setting(name: str, value: Any) -> dict[str, Any]:
            return {"type": "set", "room": "lobby", "setting": name, "value": value}

        self.assertRequests(
            {
                "/room info": {"type": "room_settings", "room": "lobby"},
                "/room info dev": {"type": "room_settings", "room": "dev"},
                "/room register": {"type": "register_room", "room": "lobby"},
                "/room unregister": {"type": "unregister_room", "room": "lobby"},
                "/room set invite on": setting("invite_only", True),
                "/room set invite off": setting("invite_only", False),
                "/room set moderated on": setting("moderated", True),
                "/room set secret off": setting("secret", False),
                "/room set topiclock off": setting("topic_locked", False),
                "/room set external on": setting("no_external", False),
                "/room set external off": setting("no_external", True),
                "/room set key sesame": setting("key", "sesame"),
                "/room set key off": setting("key", None),
                "/room set limit 25": setting("limit", 25),
                "/room set limit off": setting("limit", None),
                "/room set limit 0": None,
                "/room set limit 2.5": None,
                "/room set limit lots": None,
                "/room set invite maybe": None,
                "/room set colour red": None,
                "/room set constructor x": None,
                "/room set": None,
                "/room": None,
                "/room dance": None,
            }
        )
