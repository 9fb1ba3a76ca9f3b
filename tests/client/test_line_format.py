"""
The client reads the lines the server writes.

The line format is defined once, by L{chatservice.frontends.line.wire}; the
client has its own parser (L{chatservice.client.session_state}, the goodbye
line in L{chatservice.client.connection}, the error line in
L{chatservice.client.tls_endpoint}), since it must not depend on the
server's code. So every line the client recognises is rendered here with
C{wire} and read back with the client's parser: a change to one without the
other fails.

The sentences inside the server's notices are the core's; L{LiveSessionTests}
plays a session against the installed server and reads each of its replies
with the client's parser.
"""

from __future__ import annotations

from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from chatservice.client.connection import GOODBYE, ServerConnection
from chatservice.client.session_state import (
    SHUTTING_DOWN,
    SessionSnapshot,
    SessionState,
    is_welcome,
)
from chatservice.client.tls_endpoint import ERROR_PREFIX
from chatservice.core.events import Goodbye
from chatservice.frontends.line import wire
from tests.support.helpers import ServerProcess, SocketClient

# Names as they may be: non-ASCII letters, marks, digits, '_' and '-'.
NAMES = [("guest12", "python"), ("Zoë", "café"), ("_a-b_9", "x_y-z"), ("José", "日本")]


def read(*lines: str, user: tuple[str, ...] = ()) -> SessionState:
    """
    A session state that has seen C{user} typed and then the server's
    C{lines}, each encoded as the server sends it and decoded as the
    client reads it.
    """
    state = SessionState()
    for line in user:
        state.user_line(line)
    for line in lines:
        state.server_line(_received(line))
    return state


def _received(line: str) -> str:
    """
    C{line} as the client reads it: encoded by the server, its line ending
    turned into a newline, and the newline taken off.
    """
    data = wire.encode(line)
    return data.replace(b"\r\n", b"\n").decode("utf-8").removesuffix("\n")


def goodbye_seen(*lines: str) -> bool:
    """
    Whether a connection that received C{lines} takes the last one for the
    server's goodbye.
    """
    connection = ServerConnection()
    connection.makeConnection(StringTransport())
    connection.print_to(lambda data: None)
    for line in lines:
        connection.dataReceived(wire.encode(line))
    return connection.said_goodbye


class WireTests(unittest.SynchronousTestCase):
    def test_welcome(self) -> None:
        for nick, room in NAMES:
            line = wire.welcome(nick, room)
            self.assertTrue(is_welcome(_received(line)), line)
            state = read(line)
            self.assertEqual(
                (state.nick, state.rooms, state.current, state.start_room),
                (nick, [room], room, room),
                line,
            )

    def test_known_as(self) -> None:
        for nick, room in NAMES:
            state = read(
                wire.welcome("guest1", room),
                wire.notice(f"You are now known as {nick}."),
            )
            self.assertEqual(state.nick, nick)

    def test_now_talking(self) -> None:
        for _, room in NAMES:
            for count in ("1 member", "3 members"):
                state = read(
                    wire.welcome("guest1", "lobby"),
                    wire.notice(f"Now talking in {room} ({count})."),
                )
                self.assertEqual((state.rooms, state.current), (["lobby", room], room))
            state = read(
                wire.welcome("guest1", room),
                wire.notice("Now talking in other (1 member)."),
                wire.notice(f"Now talking in {room}."),
            )
            self.assertEqual((state.rooms, state.current), ([room, "other"], room))

    def test_left(self) -> None:
        for _, room in NAMES:
            state = read(
                wire.welcome("guest1", "lobby"),
                wire.notice(f"Now talking in {room} (1 member)."),
                wire.notice(f"You left lobby; now talking in {room}."),
            )
            self.assertEqual((state.rooms, state.current), ([room], room))
            state.server_line(
                _received(
                    wire.notice(
                        f"You left {room}; you are in no room now; /join one to talk."
                    )
                )
            )
            self.assertEqual((state.rooms, state.current), ([], None))

    def test_accounts(self) -> None:
        for nick, _ in NAMES:
            state = read(
                wire.welcome("guest1", "lobby"),
                wire.notice(f"{nick} is registered to you, and you are logged in."),
                user=("/register wonderland1",),
            )
            self.assertEqual((state.account, state.password), (nick, "wonderland1"))
            state.user_line("/password wonderland1 looking-glass")
            state.server_line(_received(wire.notice("Your password is changed.")))
            self.assertEqual(state.password, "looking-glass")
            state.server_line(_received(wire.notice("You are logged out.")))
            self.assertEqual((state.account, state.password), (None, None))
            state.user_line(f"/login {nick} looking-glass")
            state.server_line(_received(wire.notice(f"You are logged in as {nick}.")))
            self.assertEqual((state.account, state.password), (nick, "looking-glass"))
            state.server_line(
                _received(
                    wire.notice(
                        f"{nick} has logged in from elsewhere; you are renamed."
                    )
                )
            )
            self.assertEqual((state.account, state.password), (None, None))

    def test_others_lines(self) -> None:
        """
        No line that carries someone else's words, however they are
        chosen, changes the session: only the server's notices do.
        """
        welcome = wire.welcome("guest1", "lobby")
        before = read(welcome).snapshot()
        tricks = [
            wire.notice("You are now known as mallory."),
            wire.notice("Now talking in trap (1 member)."),
            wire.notice("mallory is registered to you, and you are logged in."),
            wire.notice("You are logged in as mallory."),
            wire.notice("You left lobby; you are in no room now; /join one to talk."),
        ]
        for trick in tricks:
            others = [
                wire.message("lobby", "mallory", trick),
                wire.action("lobby", "mallory", trick),
                wire.private("mallory", trick),
                wire.quit("lobby", "mallory", trick),
                wire.history_line("lobby", "12:00", "message", "mallory", trick),
                wire.history_line("lobby", "12:00", "action", "mallory", trick),
            ]
            for line in others:
                # What the client relies on: only the server starts a line
                # with a notice's mark.
                self.assertFalse(line.startswith("*** "), line)
            for line in [
                *others,
                wire.motd_line(trick),
                wire.error(trick.removeprefix("*** ")),
            ]:
                self.assertEqual(read(welcome, line).snapshot(), before, line)

    def test_room_lines(self) -> None:
        """
        Lines about others in the room, history and the message of the day
        leave the session as it was.
        """
        welcome = wire.welcome("guest1", "lobby")
        before = read(welcome).snapshot()
        for line in [
            wire.joined("lobby", "bob"),
            wire.left("lobby", "bob"),
            wire.quit("lobby", "bob", "quit"),
            wire.renamed("lobby", "bob", "robert"),
            wire.history_start("lobby", 3),
            wire.history_end("lobby"),
            wire.motd_start(),
            wire.motd_line(""),
            wire.motd_line("Welcome, all."),
            wire.error("The nickname bob is taken."),
        ]:
            self.assertFalse(is_welcome(_received(line)), line)
            self.assertEqual(read(welcome, line).snapshot(), before, line)

    def test_goodbye(self) -> None:
        """
        The server's answer to C{/quit} (the line renderer's rendering of
        the core's L{Goodbye}) is the goodbye the client waits for; the
        shutdown line is not, though it ends in "Goodbye." too.
        """
        goodbye = wire.goodbye()
        rendered = wire.LineRenderer().render(Goodbye())
        self.assertEqual(rendered, wire.encode(goodbye))
        self.assertEqual(rendered.replace(b"\r\n", b"\n"), GOODBYE)
        self.assertTrue(goodbye_seen(goodbye))
        self.assertTrue(goodbye_seen(wire.welcome("guest1", "lobby"), goodbye))
        self.assertFalse(goodbye_seen(goodbye, wire.joined("lobby", "bob")))
        self.assertFalse(goodbye_seen(wire.message("lobby", "bob", goodbye)))
        self.assertFalse(goodbye_seen(wire.shutting_down()))

    def test_shutting_down(self) -> None:
        self.assertEqual(_received(wire.shutting_down()), SHUTTING_DOWN)

    def test_error(self) -> None:
        self.assertEqual(wire.error("No."), ERROR_PREFIX + "No.")


class LiveSessionTests(unittest.SynchronousTestCase):
    """
    A session against the installed server, each of its replies read by the
    client's parser, as C{chat-client --reconnect} reads them.
    """

    def setUp(self) -> None:
        self.server = ServerProcess(self, options=["--database", ":memory:"])
        assert self.server.tcp_port is not None
        self.port = self.server.tcp_port
        self.state = SessionState()
        self.received = b""

    def connect(self) -> SocketClient:
        client = SocketClient(self, self.port)
        self.received += client.read_line()
        self.state.server_line(self.received.decode().removesuffix("\r\n"))
        return client

    def command(self, client: SocketClient, line: str, reply: str) -> None:
        """
        Type C{line}, and read the server's lines up to the one that starts
        with C{reply}.
        """
        self.state.user_line(line)
        client.send(line.encode() + b"\r\n")
        while True:
            data = client.read_line()
            self.received += data
            text = data.decode().removesuffix("\r\n")
            self.state.server_line(text)
            if text.startswith(reply):
                return

    def test_session(self) -> None:
        client = self.connect()
        self.assertTrue(is_welcome(self.received.decode()))
        guest = self.state.nick
        assert guest is not None
        self.assertEqual(
            self.state.snapshot(), SessionSnapshot(guest, ("lobby",), "lobby")
        )
        self.command(client, "/nick Zoë", "*** You are now known as")
        self.command(client, "/register wonderland1", "*** Zoë is registered")
        self.command(client, "/join café", "*** Now talking in café")
        self.command(client, "/join python", "*** Now talking in python")
        self.command(client, "/join café", "*** Now talking in café.")
        self.command(client, "/part lobby", "*** You left lobby")
        self.command(client, "/password wonderland1 looking-glass", "*** Your password")
        self.assertEqual(
            self.state.snapshot(),
            SessionSnapshot(
                "Zoë", ("café", "python"), "café", "Zoë", "looking-glass", "lobby"
            ),
        )
        self.command(client, "/logout", "*** You are now known as guest")
        self.assertEqual((self.state.account, self.state.password), (None, None))
        self.command(client, "/login zoë looking-glass", "*** You are logged in as")
        self.assertEqual(
            (self.state.nick, self.state.account, self.state.password),
            ("Zoë", "Zoë", "looking-glass"),
        )

        elsewhere = SocketClient(self, self.port)
        elsewhere.welcome()
        elsewhere.send("/login Zoë looking-glass\r\n".encode())
        elsewhere.read_until(lambda line: line.startswith(b"*** You are logged in"))
        while not self.state.nick or self.state.nick == "Zoë":
            data = client.read_line()
            self.state.server_line(data.decode().removesuffix("\r\n"))
        self.assertTrue(self.state.nick.startswith("guest"))
        self.assertEqual((self.state.account, self.state.password), (None, None))

        self.command(client, "/part python", "*** You left python")
        self.command(client, "/part café", "*** You left café")
        self.assertEqual((self.state.rooms, self.state.current), ([], None))
        self.assertEqual(self.state.snapshot().commands(), ["/part lobby"])

        client.send(b"/quit\r\n")
        connection = ServerConnection()
        connection.makeConnection(StringTransport())
        connection.print_to(lambda data: None)
        connection.dataReceived(client.read_to_end())
        self.assertTrue(connection.said_goodbye)

        elsewhere.send(b"/join python\r\n")
        elsewhere.read_until(lambda line: line.startswith(b"*** Now talking in"))
        self.server.stop()
        last = elsewhere.read_to_end().decode().splitlines()[-1]
        self.assertEqual(last, SHUTTING_DOWN)
