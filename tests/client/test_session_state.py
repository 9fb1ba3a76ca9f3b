"""
The session as the server describes it
(L{chatservice.client.session_state}): read from the server's lines, and
restored by commands.
"""

from __future__ import annotations

from twisted.trial import unittest

from chatservice.client.session_state import SessionSnapshot, SessionState
from tests.client.helpers import WELCOME


class SessionStateTests(unittest.SynchronousTestCase):
    def state(self, *lines: str, user: tuple[str, ...] = ()) -> SessionState:
        state = SessionState()
        for line in user:
            state.user_line(line)
        for line in lines:
            state.server_line(line)
        return state

    def test_welcome(self) -> None:
        state = self.state(WELCOME)
        self.assertEqual(
            state.snapshot(),
            SessionSnapshot(nick="guest3", rooms=("lobby",), current="lobby"),
        )

    def test_nick_and_rooms(self) -> None:
        state = self.state(
            WELCOME,
            "*** You are now known as alice.",
            "*** Now talking in python (3 members).",
            "*** Now talking in rust (1 member).",
            "*** Now talking in python.",
        )
        self.assertEqual(state.nick, "alice")
        self.assertEqual(state.rooms, ["lobby", "python", "rust"])
        self.assertEqual(state.current, "python")

    def test_part(self) -> None:
        state = self.state(
            WELCOME,
            "*** Now talking in python (1 member).",
            "*** You left lobby; now talking in python.",
        )
        self.assertEqual((state.rooms, state.current), (["python"], "python"))
        state.server_line(
            "*** You left python; you are in no room now; /join one to talk."
        )
        self.assertEqual((state.rooms, state.current), ([], None))

    def test_others_cannot_pretend(self) -> None:
        """
        Only lines starting with C{*** } count, and only the server sends
        those.
        """
        state = self.state(
            WELCOME,
            "[lobby] <bob> *** You are now known as bob.",
            "*bob* *** Now talking in trap (1 member).",
            "[lobby] * bob *** You are logged in as bob.",
            user=("/login bob secretpw",),
        )
        self.assertEqual(
            state.snapshot(), SessionSnapshot("guest3", ("lobby",), "lobby")
        )

    def test_register(self) -> None:
        state = self.state(
            WELCOME,
            "*** You are now known as alice.",
            "*** alice is registered to you, and you are logged in.",
            user=("/register wonderland1",),
        )
        self.assertEqual((state.account, state.password), ("alice", "wonderland1"))

    def test_login(self) -> None:
        state = self.state(
            WELCOME,
            "*** You are now known as Alice.",
            "*** You are logged in as Alice.",
            user=("/LOGIN alice wonderland1",),
        )
        self.assertEqual((state.account, state.password), ("Alice", "wonderland1"))

    def test_wrong_password_is_not_kept(self) -> None:
        state = self.state(
            WELCOME,
            "!!! Wrong password for alice.",
            user=("/login alice guess1234",),
        )
        self.assertIsNone(state.account)
        self.assertIsNone(state.snapshot().password)

    def test_password_change(self) -> None:
        state = self.state(
            WELCOME,
            "*** You are logged in as alice.",
            user=("/login alice wonderland1", "/password wonderland1 looking-glass"),
        )
        self.assertEqual(state.password, "wonderland1")
        state.server_line("*** Your password is changed.")
        self.assertEqual(state.password, "looking-glass")

    def test_password_change_refused(self) -> None:
        state = self.state(
            WELCOME,
            "*** You are logged in as alice.",
            "!!! Wrong password; the password is unchanged.",
            user=("/login alice wonderland1", "/password nope looking-glass"),
        )
        self.assertEqual(state.password, "wonderland1")

    def test_logout(self) -> None:
        state = self.state(
            WELCOME,
            "*** You are logged in as alice.",
            "*** You are logged out.",
            user=("/login alice wonderland1",),
        )
        self.assertEqual((state.account, state.password), (None, None))

    def test_displaced(self) -> None:
        """
        Someone else logging in as our name logs us out: reconnecting must
        not log in again and displace them in turn.
        """
        state = self.state(
            WELCOME,
            "*** You are logged in as alice.",
            "*** alice has logged in from elsewhere; you are renamed.",
            "*** You are now known as guest9.",
            user=("/login alice wonderland1",),
        )
        self.assertEqual(state.snapshot().commands(), [])

    def test_new_welcome_resets(self) -> None:
        state = self.state(
            WELCOME,
            "*** You are logged in as alice.",
            "*** Now talking in python (1 member).",
            WELCOME.replace("guest3", "guest7"),
            user=("/login alice wonderland1",),
        )
        self.assertEqual(
            state.snapshot(), SessionSnapshot("guest7", ("lobby",), "lobby")
        )


class SessionSnapshotTests(unittest.SynchronousTestCase):
    def test_never_welcomed(self) -> None:
        """
        A session the server never took in (it was full) restores nothing:
        not even the part from the room a newcomer is put in.
        """
        self.assertEqual(SessionSnapshot().commands(), [])

    def test_guest_in_lobby(self) -> None:
        snapshot = SessionSnapshot("guest3", ("lobby",), "lobby")
        self.assertEqual(snapshot.commands(), [])
        self.assertEqual(snapshot.describe(), "rooms lobby")

    def test_nick_and_rooms(self) -> None:
        snapshot = SessionSnapshot("alice", ("lobby", "python"), "python")
        self.assertEqual(snapshot.commands(), ["/nick alice", "/join python"])
        self.assertEqual(snapshot.describe(), "nickname alice, rooms lobby, python")

    def test_current_room_kept(self) -> None:
        snapshot = SessionSnapshot("alice", ("lobby", "python", "rust"), "lobby")
        self.assertEqual(
            snapshot.commands(),
            ["/nick alice", "/join python", "/join rust", "/join lobby"],
        )

    def test_not_in_lobby(self) -> None:
        snapshot = SessionSnapshot("guest3", ("python", "rust"), "python")
        self.assertEqual(
            snapshot.commands(),
            ["/join python", "/join rust", "/part lobby", "/join python"],
        )
        snapshot = SessionSnapshot("guest3", ("python", "rust"), "rust")
        self.assertEqual(
            snapshot.commands(), ["/join python", "/join rust", "/part lobby"]
        )

    def test_no_room(self) -> None:
        snapshot = SessionSnapshot("guest3", (), None)
        self.assertEqual(snapshot.commands(), ["/part lobby"])
        self.assertEqual(snapshot.describe(), "no rooms")

    def test_login(self) -> None:
        snapshot = SessionSnapshot("alice", ("lobby",), "lobby", "Alice", "wonderland1")
        self.assertEqual(snapshot.commands(), ["/login Alice wonderland1"])
        self.assertEqual(
            snapshot.describe(), "nickname alice (logging in), rooms lobby"
        )

    def test_login_then_other_nick(self) -> None:
        snapshot = SessionSnapshot(
            "rabbit", ("lobby",), "lobby", "alice", "wonderland1"
        )
        self.assertEqual(
            snapshot.commands(), ["/login alice wonderland1", "/nick rabbit"]
        )

    def test_logged_in_without_password(self) -> None:
        """
        Logged in, but the password was never typed here (it cannot be):
        the nickname alone is asked for.
        """
        snapshot = SessionSnapshot("alice", ("lobby",), "lobby", "alice", None)
        self.assertEqual(snapshot.commands(), ["/nick alice"])

    def test_reached_by(self) -> None:
        target = SessionSnapshot("alice", ("lobby", "python"), "python", "alice", "pw")
        self.assertFalse(
            target.reached_by(SessionSnapshot("guest1", ("lobby",), "lobby"))
        )
        self.assertTrue(
            target.reached_by(
                SessionSnapshot("Alice", ("python", "lobby"), "python", "alice")
            )
        )
        guest = SessionSnapshot("guest3", ("lobby",), "lobby")
        self.assertTrue(
            guest.reached_by(SessionSnapshot("guest8", ("lobby",), "lobby"))
        )
