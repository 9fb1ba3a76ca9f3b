"""
Tests for room moderation over the web front end's JSON requests
(L{chatservice.frontends.web.requests}), in memory: each request carried
out for an operator and told to the room, each refused to a member who is
no operator, with nothing changed, and hostile fields refused clearly.
"""

from __future__ import annotations

from typing import Any

from chatservice.core.durations import DURATION_MAX
from chatservice.core.rooms import Room
from chatservice.frontends.limits import Limits
from tests.frontends.web.test_session import WebTestCase
from tests.support.web import WebClient


class ModerationTestCase(WebTestCase):
    """
    C{self.op} entered C{lobby} first, so runs it; C{self.guest} entered
    after; both have read everything so far. Flood control is off: each
    test sends more requests than a burst.
    """

    limits = Limits(flood_rate=0)

    def setUp(self) -> None:
        super().setUp()
        self.op = self.joined()
        self.guest = self.joined()
        self.op.events()
        self.guest.events()

    @property
    def room(self) -> Room:
        return self.harness.chat.room("lobby")

    def asked(self, client: WebClient, **request: Any) -> list[dict[str, Any]]:
        """Send C{request} with an id, and return what came back."""
        return client.request({**request, "id": 7})

    def refused(self, client: WebClient, code: str, **request: Any) -> dict[str, Any]:
        """Send C{request}, which must be refused with C{code} alone."""
        (error,) = self.asked(client, **request)
        self.assertEqual(
            (error["type"], error["code"], error["id"]), ("error", code, 7)
        )
        return error

    def nick(self, client: WebClient) -> str:
        return client.session.nick


class SettingsTests(ModerationTestCase):
    def test_roomSettings(self) -> None:
        """
        A room_settings request is told the room's settings, the key to a
        member only.
        """
        self.room.key = "sesame"
        (settings, ok) = self.asked(self.guest, type="room_settings", room="LOBBY")
        self.assertEqual(ok, {"type": "ok", "id": 7})
        self.assertEqual(
            {k: v for k, v in settings.items() if k not in ("created", "time")},
            {
                "type": "room_settings",
                "room": "lobby",
                "invite_only": False,
                "key": "sesame",
                "limit": None,
                "moderated": False,
                "no_external": True,
                "secret": False,
                "topic_locked": True,
                "founder": None,
            },
        )
        outsider = self.client()
        outsider.events()
        (settings, _) = self.asked(outsider, type="room_settings", room="lobby")
        self.assertIsNone(settings["key"])

    def test_secretRoomIsNoRoom(self) -> None:
        """A secret room's settings and lists are not told outside it."""
        self.room.secret = True
        outsider = self.client()
        outsider.events()
        for kind in ("room_settings", "bans", "mutes"):
            error = self.refused(outsider, "no_such_room", type=kind, room="lobby")
            self.assertEqual(error["room"], "lobby")

    def test_setEachSetting(self) -> None:
        """
        An operator sets each setting with a typed JSON value; the room
        is told each change, and only a change.
        """
        values: list[tuple[str, Any]] = [
            ("invite_only", True),
            ("moderated", True),
            ("no_external", False),
            ("secret", True),
            ("topic_locked", False),
            ("key", "sesame"),
            ("limit", 10),
            ("key", None),
            ("limit", None),
        ]
        for setting, value in values:
            found = self.asked(
                self.op, type="set", room="lobby", setting=setting, value=value
            )
            changed = {
                "type": "setting_changed",
                "room": "lobby",
                "nick": self.nick(self.op),
                "setting": setting,
                "value": value,
            }
            self.assertEqual(found[0], {**changed, "time": found[0]["time"]})
            self.assertEqual(found[1:], [{"type": "ok", "id": 7}])
            (seen,) = self.guest.events()
            self.assertEqual(seen["setting"], setting)
            self.assertEqual(seen["value"], value)
        self.assertEqual(
            (self.room.invite_only, self.room.moderated, self.room.no_external),
            (True, True, False),
        )
        # The same value again changes nothing, and says nothing.
        again = self.asked(
            self.op, type="set", room="lobby", setting="secret", value=True
        )
        self.assertEqual(again, [{"type": "ok", "id": 7}])
        self.assertEqual(self.guest.events(), [])

    def test_setRefusedToNonOperator(self) -> None:
        self.refused(
            self.guest,
            "not_operator",
            type="set",
            room="lobby",
            setting="moderated",
            value=True,
        )
        self.assertFalse(self.room.moderated)
        self.assertEqual(self.op.events(), [])

    def test_setOutsideTheRoom(self) -> None:
        outsider = self.client()
        outsider.events()
        self.refused(
            outsider,
            "not_in_room",
            type="set",
            room="lobby",
            setting="secret",
            value=True,
        )
        self.assertFalse(self.room.secret)

    def test_setBadValues(self) -> None:
        """
        A value of the wrong type, an unknown setting, a float, a list, a
        huge number or string: each refused clearly, and short.
        """
        cases: list[tuple[str, Any, str]] = [
            ("moderated", "on", "bad_setting"),
            ("moderated", 1, "bad_setting"),
            ("moderated", None, "bad_setting"),
            ("moderated", "x" * 3000, "bad_setting"),
            ("key", True, "bad_setting"),
            ("key", "two words", "bad_setting"),
            ("key", "", "bad_setting"),
            ("key", "k" * 3000, "bad_setting"),
            ("limit", "10", "bad_setting"),
            ("limit", 0, "bad_setting"),
            ("limit", -5, "bad_setting"),
            ("limit", True, "bad_setting"),
            ("limit", 10**30, "bad_field"),
            ("limit", 2.5, "bad_field"),
            ("limit", [1], "bad_field"),
            ("secret", {"on": True}, "bad_field"),
            ("colour", "red", "bad_setting"),
            ("s" * 3000, True, "bad_setting"),
            ("__class__", True, "bad_setting"),
        ]
        for setting, value, code in cases:
            error = self.refused(
                self.op, code, type="set", room="lobby", setting=setting, value=value
            )
            self.assertLess(len(repr(error)), 300, error)
        missing = self.refused(
            self.op, "bad_field", type="set", room="lobby", setting="secret"
        )
        self.assertEqual(missing["field"], "value")
        self.assertEqual(
            (self.room.moderated, self.room.key, self.room.limit, self.room.secret),
            (False, None, None, False),
        )
        self.assertEqual(self.guest.events(), [])


class MaskTests(ModerationTestCase):
    def test_banPutsOutAndKeepsOut(self) -> None:
        """
        A ban by nickname is told to the room with its entry, puts the
        member out, and keeps it out.
        """
        guest = self.nick(self.guest)
        self.clock_now = self.harness.clock.seconds()
        found = self.asked(
            self.op,
            type="ban",
            room="lobby",
            mask=guest,
            duration="10m",
            reason="spam",
        )
        added, kicked, ok = found
        self.assertEqual(added["type"], "mask_added")
        self.assertEqual(added["kind"], "ban")
        self.assertEqual(
            added["entry"],
            {
                "mask": f"{guest}!*@*",
                "by": self.nick(self.op),
                "at": self.clock_now,
                "expires": self.clock_now + 600,
                "reason": "spam",
            },
        )
        self.assertEqual(
            (kicked["type"], kicked["nick"], kicked["reason"]),
            ("kicked", guest, "spam"),
        )
        self.assertEqual(ok["type"], "ok")
        self.assertIn("kicked", [e["type"] for e in self.guest.events()])
        error = self.refused(self.guest, "banned", type="join", room="lobby")
        self.assertEqual(error["reason"], "spam")

    def test_listAndRemove(self) -> None:
        """
        Bans and mutes are listed with their entries, to anyone who may
        see the room, and removed with the room told.
        """
        self.asked(self.op, type="ban", room="lobby", mask="*@10.9.9.9")
        self.asked(self.op, type="mute", room="lobby", mask="$a:troll", duration=60)
        self.guest.events()
        (bans, _) = self.asked(self.guest, type="bans", room="lobby")
        self.assertEqual(
            (bans["type"], bans["kind"], [e["mask"] for e in bans["entries"]]),
            ("mask_list", "ban", ["*!*@10.9.9.9"]),
        )
        self.assertIsNone(bans["entries"][0]["expires"])
        (mutes, _) = self.asked(self.guest, type="mutes", room="lobby")
        self.assertEqual(
            (mutes["kind"], [e["mask"] for e in mutes["entries"]]),
            ("quiet", ["$a:troll"]),
        )
        (removed, _) = self.asked(self.op, type="unmute", room="lobby", mask="$a:TROLL")
        self.assertEqual(
            {k: removed[k] for k in ("type", "kind", "mask")},
            {"type": "mask_removed", "kind": "quiet", "mask": "$a:troll"},
        )
        self.assertEqual(self.guest.events()[0]["type"], "mask_removed")
        self.asked(self.op, type="unban", room="lobby", mask="*@10.9.9.9")
        self.assertEqual((self.room.bans, self.room.quiets), ({}, {}))
        error = self.refused(
            self.op, "no_such_mask", type="unban", room="lobby", mask="x"
        )
        self.assertEqual((error["kind"], error["mask"]), ("ban", "x!*@*"))

    def test_muteSilences(self) -> None:
        guest = self.nick(self.guest)
        self.asked(self.op, type="mute", room="lobby", mask=guest, reason="calm down")
        self.guest.events()
        error = self.refused(
            self.guest, "cannot_speak", type="say", room="lobby", text="hi"
        )
        self.assertEqual(error["why"], "muted")

    def test_refusedToNonOperator(self) -> None:
        """
        A member who is no operator may not ban, mute or take either off:
        refused, the lists unchanged, the room told nothing.
        """
        self.asked(self.op, type="ban", room="lobby", mask="spammer")
        self.asked(self.op, type="mute", room="lobby", mask="shouter")
        self.op.events()
        for kind in ("ban", "mute"):
            self.refused(self.guest, "not_operator", type=kind, room="lobby", mask="x")
        self.refused(
            self.guest, "not_operator", type="unban", room="lobby", mask="spammer"
        )
        self.refused(
            self.guest, "not_operator", type="unmute", room="lobby", mask="shouter"
        )
        self.assertEqual(list(self.room.bans), ["spammer!*@*"])
        self.assertEqual(list(self.room.quiets), ["shouter!*@*"])
        self.assertEqual(self.op.events(), [])

    def test_hostileMasksAndDurations(self) -> None:
        """
        Malformed masks, durations past, far future or of the wrong type,
        huge strings: each refused clearly and short, nothing listed.
        """
        cases: list[tuple[dict[str, Any], str]] = [
            ({"mask": "a!b!c@d"}, "bad_mask"),
            ({"mask": "x" * 3000}, "bad_mask"),
            ({"mask": "*!*@10.0.0.0/99"}, "bad_mask"),
            ({"mask": 5}, "bad_field"),
            ({"mask": ""}, "bad_field"),
            ({"mask": "ok", "duration": -60}, "bad_duration"),
            ({"mask": "ok", "duration": 0}, "bad_duration"),
            ({"mask": "ok", "duration": DURATION_MAX + 1}, "bad_duration"),
            ({"mask": "ok", "duration": 10**300}, "bad_duration"),
            ({"mask": "ok", "duration": "-1m"}, "bad_duration"),
            ({"mask": "ok", "duration": "11000d"}, "bad_duration"),
            ({"mask": "ok", "duration": "soon" * 500}, "bad_duration"),
            ({"mask": "ok", "duration": True}, "bad_field"),
            ({"mask": "ok", "duration": [60]}, "bad_field"),
            ({"mask": "ok", "reason": 5}, "bad_field"),
        ]
        for fields, code in cases:
            for kind in ("ban", "mute"):
                error = self.refused(self.op, code, type=kind, room="lobby", **fields)
                self.assertLess(len(repr(error)), 300, error)
        # The same refusal as the JSON NaN and Infinity that json reads.
        for spelling in ("NaN", "Infinity", "-Infinity", "1e999"):
            self.op.send(
                '{"type":"ban","room":"lobby","mask":"ok","duration":'
                + spelling
                + ',"id":1}'
            )
            (error,) = self.op.events()
            self.assertEqual(error["code"], "bad_duration", spelling)
        self.assertEqual((self.room.bans, self.room.quiets), ({}, {}))
        self.assertEqual(self.guest.events(), [])

    def test_durationSpellings(self) -> None:
        """A duration in seconds, as text, or for ever."""
        now = self.harness.clock.seconds()
        for duration, expires in [
            (90, now + 90),
            (1.5, now + 1.5),
            ("2h", now + 7200),
            ("forever", None),
            (None, None),
        ]:
            (added, _) = self.asked(
                self.op, type="mute", room="lobby", mask="m", duration=duration
            )
            self.assertEqual(added["entry"]["expires"], expires, duration)

    def test_unicodeNick(self) -> None:
        """A ban of a Unicode nickname matches it whatever its case."""
        self.asked(self.guest, type="nick", nick="Ünïcødé")
        self.op.events()
        found = self.asked(self.op, type="ban", room="lobby", mask="üNÏCØDÉ")
        self.assertEqual([e["type"] for e in found], ["mask_added", "kicked", "ok"])
        self.assertEqual(found[1]["nick"], "Ünïcødé")


class VoiceAndInviteTests(ModerationTestCase):
    def test_voice(self) -> None:
        guest = self.nick(self.guest)
        self.asked(self.op, type="set", room="lobby", setting="moderated", value=True)
        self.guest.events()
        self.refused(self.guest, "cannot_speak", type="say", room="lobby", text="hi")
        (voiced, _) = self.asked(self.op, type="voice", room="lobby", nick=guest)
        self.assertEqual(
            {k: voiced[k] for k in ("type", "nick", "by")},
            {"type": "voiced", "nick": guest, "by": self.nick(self.op)},
        )
        self.guest.events()
        self.assertEqual(
            self.asked(self.guest, type="say", room="lobby", text="hi")[-1]["type"],
            "ok",
        )
        (names, _) = self.asked(self.guest, type="names", room="lobby")
        self.assertEqual(names["voiced"], [guest])
        (devoiced, _) = self.asked(self.op, type="devoice", room="lobby", nick=guest)
        self.assertEqual(devoiced["type"], "devoiced")

    def test_voiceRefusedToNonOperator(self) -> None:
        guest = self.nick(self.guest)
        self.refused(self.guest, "not_operator", type="voice", room="lobby", nick=guest)
        self.refused(
            self.guest, "not_operator", type="devoice", room="lobby", nick=guest
        )
        self.assertEqual(self.room.voiced, set())
        self.assertEqual(self.op.events(), [])

    def test_inviteOnlyAndKey(self) -> None:
        """
        Into an invite-only room with a key, an invitation lets one past
        the invitation only: the key is still asked.
        """
        newcomer = self.client()
        newcomer.events()
        self.asked(self.op, type="set", room="lobby", setting="invite_only", value=True)
        self.asked(self.op, type="set", room="lobby", setting="key", value="sesame")
        self.refused(newcomer, "invite_only", type="join", room="lobby")
        found = self.asked(
            self.op, type="invite", room="lobby", nick=self.nick(newcomer)
        )
        self.assertEqual(
            found,
            [
                {"type": "invite_sent", "room": "lobby", "nick": self.nick(newcomer)},
                {"type": "ok", "id": 7},
            ],
        )
        self.assertEqual(
            newcomer.events(),
            [{"type": "invited", "room": "lobby", "by": self.nick(self.op)}],
        )
        self.refused(newcomer, "bad_key", type="join", room="lobby")
        self.refused(newcomer, "bad_key", type="join", room="lobby", key="wrong")
        found = self.asked(newcomer, type="join", room="lobby", key="sesame")
        self.assertEqual(found[0]["type"], "entered")
        self.refused(newcomer, "bad_field", type="join", room="lobby", key=5)

    def test_inviteRefused(self) -> None:
        """
        Into an invite-only room only an operator invites; nobody invites
        into a room it is not in, or someone already there.
        """
        newcomer = self.client()
        newcomer.events()
        self.asked(self.op, type="set", room="lobby", setting="invite_only", value=True)
        self.guest.events()
        self.refused(
            self.guest,
            "not_operator",
            type="invite",
            room="lobby",
            nick=self.nick(newcomer),
        )
        self.assertEqual(newcomer.events(), [])
        self.assertEqual(self.room.invited, set())
        self.refused(
            newcomer,
            "not_in_room",
            type="invite",
            room="lobby",
            nick=self.nick(newcomer),
        )
        self.refused(
            self.op,
            "already_in_room",
            type="invite",
            room="lobby",
            nick=self.nick(self.guest),
        )
        self.refused(
            self.op, "no_such_nick", type="invite", room="lobby", nick="nobody"
        )

    def test_limit(self) -> None:
        self.asked(self.op, type="set", room="lobby", setting="limit", value=2)
        newcomer = self.client()
        newcomer.events()
        self.refused(newcomer, "room_full", type="join", room="lobby")


class RegisteredRoomTests(ModerationTestCase):
    def test_registerAndUnregister(self) -> None:
        """
        A logged-in operator registers the room, the room is told, and its
        settings say whose it is; the founder unregisters it.
        """
        self.harness.chat.log_in(self.op.session.me(), self.nick(self.op))
        self.op.events()
        self.refused(self.guest, "not_logged_in", type="register_room", room="lobby")
        found = self.asked(self.op, type="register_room", room="lobby")
        founder = self.nick(self.op).lower()
        self.assertEqual(
            {k: found[0][k] for k in ("type", "room", "founder")},
            {"type": "room_registered", "room": "lobby", "founder": founder},
        )
        self.assertEqual(self.guest.events()[0]["type"], "room_registered")
        (settings, _) = self.asked(self.guest, type="room_settings", room="lobby")
        self.assertEqual(settings["founder"], founder)
        error = self.refused(
            self.op, "room_already_registered", type="register_room", room="lobby"
        )
        self.assertEqual(error["founder"], founder)
        self.refused(self.guest, "not_founder", type="unregister_room", room="lobby")
        self.assertEqual(self.room.founder, founder)
        found = self.asked(self.op, type="unregister_room", room="lobby")
        self.assertEqual(
            {k: found[0][k] for k in ("type", "founder")},
            {"type": "room_registered", "founder": None},
        )
        self.refused(
            self.op, "room_not_registered", type="unregister_room", room="lobby"
        )

    def test_registerRefusedToNonOperator(self) -> None:
        self.harness.chat.log_in(self.guest.session.me(), self.nick(self.guest))
        self.guest.events()
        self.refused(self.guest, "not_operator", type="register_room", room="lobby")
        self.assertIsNone(self.room.founder)
