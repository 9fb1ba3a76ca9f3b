"""
The chat server over real loopback TCP, in this process, on the real reactor.
"""

from __future__ import annotations

import re

from twisted.internet.error import ConnectionDone
from twisted.trial import unittest

from chatservice.frontends.limits import Limits
from tests.support.helpers import LineClient, LoopbackChat, deferred_test


class IntegrationTests(unittest.TestCase):
    async def start(self, limits: Limits | None = None) -> LoopbackChat:
        return await LoopbackChat(self, limits).start()

    async def barrier(self, client: LineClient) -> None:
        """
        Wait until the server has sent C{client} everything queued for it so
        far: the reply to a request sent now comes after all of it.
        """
        client.send("/help who")
        await client.next_line(
            "*** /who [ROOM]: List who is in ROOM, or in your current room."
        )

    @deferred_test
    async def test_guests_are_welcomed_and_announced(self) -> None:
        """
        Each connection gets its own guest nickname in order, and those
        already in the lobby see it join.
        """
        chat = await self.start()
        first = await chat.connect()
        second = await chat.connect()
        third = await chat.connect()
        self.assertEqual(
            [first.lines[0], second.lines[0], third.lines[0]],
            [
                f"*** Welcome to chatservice, guest{n}! You are in lobby. "
                "Type /help for commands."
                for n in (1, 2, 3)
            ],
        )
        await first.next_line("[lobby] --> guest2 joined")
        await first.next_line("[lobby] --> guest3 joined")
        await second.next_line("[lobby] --> guest3 joined")
        third.send("/who")
        await third.next_line("*** lobby (3 members): @guest1, guest2, guest3")

    @deferred_test
    async def test_broadcast_reaches_all_others_not_the_sender(self) -> None:
        chat = await self.start()
        clients = [await chat.connect() for _ in range(4)]
        clients[1].send("hello, everyone")
        for n in (0, 2, 3):
            await clients[n].next_line("[lobby] <guest2> hello, everyone")
        await self.barrier(clients[1])
        self.assertNotIn("[lobby] <guest2> hello, everyone", clients[1].lines)

        # Everyone talking at once: each line reaches every other client,
        # in whatever order the server read them.
        for n, client in enumerate(clients):
            client.send(f"from {n}")
        for n, client in enumerate(clients):
            expected = {f"[lobby] <guest{m + 1}> from {m}" for m in range(4) if m != n}
            await client.next_line(lambda _, c=client, e=expected: e <= set(c.lines))
            await self.barrier(client)
            self.assertNotIn(f"[lobby] <guest{n + 1}> from {n}", client.lines)

    @deferred_test
    async def test_nick_join_and_msg(self) -> None:
        chat = await self.start()
        alice = await chat.connect()
        bob = await chat.connect()
        carol = await chat.connect()

        alice.send("/nick alice")
        await alice.next_line("*** You are now known as alice.")
        await bob.next_line("[lobby] --- guest1 is now known as alice")
        await carol.next_line("[lobby] --- guest1 is now known as alice")

        bob.send("/nick ALICE")
        await bob.next_line("!!! The nickname ALICE is taken.")
        bob.send("/nick bob")
        await bob.next_line("*** You are now known as bob.")

        bob.send("/join dev")
        await bob.next_line("*** Now talking in dev (1 member).")
        alice.send("/join #dev")
        await alice.next_line("*** Now talking in dev (2 members).")
        await bob.next_line("[dev] --> alice joined")

        # Plain lines go to the current room only.
        alice.send("in dev now")
        await bob.next_line("[dev] <alice> in dev now")
        await self.barrier(carol)
        self.assertFalse(
            [line for line in carol.lines if "in dev now" in line], carol.lines
        )

        # A private message reaches its addressee only.
        bob.send("/msg Alice psst, alice")
        await alice.next_line("*bob* psst, alice")
        await self.barrier(carol)
        await self.barrier(bob)
        for client in (bob, carol):
            self.assertFalse([line for line in client.lines if "psst" in line])

        bob.send("/msg nobody hello?")
        await bob.next_line("!!! No such nickname: nobody.")

        # The lobby still works for those still in it.
        carol.send("/join lobby")
        await carol.next_line("*** Now talking in lobby.")
        carol.send("lobby line")
        await alice.next_line("[lobby] <guest3> lobby line")
        await bob.next_line("[lobby] <guest3> lobby line")

    @deferred_test
    async def test_abrupt_disconnect(self) -> None:
        """
        A client that vanishes (its connection reset) is announced as gone,
        and the others keep chatting.
        """
        chat = await self.start()
        first = await chat.connect()
        doomed = await chat.connect()
        third = await chat.connect()
        await first.next_line("[lobby] --> guest3 joined")

        assert doomed.transport is not None
        doomed.transport.abortConnection()
        await doomed.when_lost()
        await first.next_line("[lobby] <-- guest2 quit (connection lost)")
        await third.next_line("[lobby] <-- guest2 quit (connection lost)")

        first.send("still here?")
        await third.next_line("[lobby] <guest1> still here?")
        third.send("yes")
        await first.next_line("[lobby] <guest3> yes")
        first.send("/who")
        await first.next_line("*** lobby (2 members): @guest1, guest3")

        # The nickname is free again.
        third.send("/nick guest2")
        await third.next_line("*** You are now known as guest2.")
        await first.next_line("[lobby] --- guest3 is now known as guest2")

    @deferred_test
    async def test_many_lines_in_one_write_arrive_in_order(self) -> None:
        # With flood control off: this is about framing, not rates.
        chat = await self.start(Limits(flood_rate=0))
        sender = await chat.connect()
        receiver = await chat.connect()
        count = 2000
        # One write, far bigger than one read; nc-style and telnet-style
        # line endings mixed.
        assert sender.transport is not None
        sender.transport.write(
            b"".join(
                f"line {n:04}".encode() + (b"\r\n" if n % 2 else b"\n")
                for n in range(count)
            )
        )
        await receiver.next_line(f"[lobby] <guest1> line {count - 1:04}")
        said = [line for line in receiver.lines if line.startswith("[lobby] <guest1>")]
        self.assertEqual(said, [f"[lobby] <guest1> line {n:04}" for n in range(count)])
        await self.barrier(sender)
        self.assertFalse([line for line in sender.lines if "line 0" in line])

    @deferred_test
    async def test_overlong_line_is_refused_once_and_reading_goes_on(self) -> None:
        """
        A line far over the limit, arriving over several reads, gets one
        error, and the lines after it in the same write still count.
        """
        chat = await self.start()
        sender = await chat.connect()
        receiver = await chat.connect()
        assert sender.transport is not None
        sender.transport.write(b"before\n" + b"x" * 200_000 + b"\nafter\n")
        await receiver.next_line("[lobby] <guest1> before")
        await receiver.next_line("[lobby] <guest1> after")
        await self.barrier(sender)
        self.assertEqual(
            [line for line in sender.lines if line.startswith("!!!")],
            ["!!! Line too long (the limit is 4096 bytes); it was dropped."],
        )
        self.assertFalse([line for line in receiver.lines if "xxxx" in line])

    @deferred_test
    async def test_half_close_gets_replies_then_server_closes(self) -> None:
        """
        A client that sends its lines and then half-closes (as nc -N and
        chat-client do at the end of input) gets every reply, and then the
        server closes the connection.
        """
        chat = await self.start()
        leaver = await chat.connect()
        stayer = await chat.connect()
        leaver.send("/nick carol", "hello before closing", "/who")
        assert leaver.transport is not None
        leaver.transport.loseWriteConnection()  # type: ignore[attr-defined]
        await leaver.when_lost()
        self.assertTrue(leaver.lost_reason is not None)
        assert leaver.lost_reason is not None
        self.assertTrue(leaver.lost_reason.check(ConnectionDone), leaver.lost_reason)
        self.assertEqual(
            leaver.unread(),
            [
                "[lobby] --> guest2 joined",
                "*** You are now known as carol.",
                "*** lobby (2 members): @carol, guest2",
                "*** Goodbye.",
            ],
        )
        await stayer.next_line("[lobby] --- guest1 is now known as carol")
        await stayer.next_line("[lobby] <carol> hello before closing")
        await stayer.next_line("[lobby] <-- carol quit (connection closed)")
        stayer.send("/who")
        await stayer.next_line("*** lobby (1 member): guest2")

    @deferred_test
    async def test_half_close_after_unterminated_line(self) -> None:
        """
        A last line without a newline before the half-close still counts.
        """
        chat = await self.start()
        leaver = await chat.connect()
        stayer = await chat.connect()
        assert leaver.transport is not None
        leaver.transport.write(b"first\nlast words")
        leaver.transport.loseWriteConnection()  # type: ignore[attr-defined]
        await leaver.when_lost()
        self.assertEqual(leaver.unread()[-1], "*** Goodbye.")
        await stayer.next_line("[lobby] <guest1> first")
        await stayer.next_line("[lobby] <guest1> last words")
        await stayer.next_line("[lobby] <-- guest1 quit (connection closed)")

    @deferred_test
    async def test_quit_command_closes_after_goodbye(self) -> None:
        chat = await self.start()
        leaver = await chat.connect()
        stayer = await chat.connect()
        leaver.send("/quit see you", "never sent")
        await leaver.when_lost()
        assert leaver.lost_reason is not None
        self.assertTrue(leaver.lost_reason.check(ConnectionDone), leaver.lost_reason)
        self.assertEqual(leaver.unread(), ["[lobby] --> guest2 joined", "*** Goodbye."])
        await stayer.next_line("[lobby] <-- guest1 quit (see you)")
        await self.barrier(stayer)
        self.assertFalse([line for line in stayer.lines if "never sent" in line])


class TLSCloseTests(unittest.TestCase):
    """
    The server's end of a TLS connection closes cleanly and at once.
    """

    @deferred_test
    async def test_quitClosesCleanly(self) -> None:
        """
        After C{/quit} the server sends TLS's close_notify and closes: the
        client sees a clean close well before the server's 10 s close grace
        (which would abort the connection) could end it.
        """
        from twisted.internet import endpoints, reactor
        from twisted.internet.ssl import Certificate, optionsForClientTLS

        from tests.support.certs import make_certificate
        from tests.support.helpers import TIMEOUT, TrackedLineFactory, make_temp_dir

        key, cert = make_certificate(make_temp_dir(self))
        factory = TrackedLineFactory()
        server = endpoints.serverFromString(
            reactor, f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        )
        port = await server.listen(factory)
        self.addCleanup(port.stopListening)
        trust = Certificate.loadPEM(cert.read_bytes())
        endpoint = endpoints.wrapClientTLS(
            optionsForClientTLS("127.0.0.1", trustRoot=trust),
            endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),
        )
        client = LineClient()
        await endpoints.connectProtocol(endpoint, client).addTimeout(TIMEOUT, reactor)
        await client.next_line(re.compile(r"^\*\*\* Welcome to chatservice, "))
        client.send("/quit")
        await client.next_line("*** Goodbye.")
        await client.when_lost()
        assert client.lost_reason is not None
        self.assertTrue(client.lost_reason.check(ConnectionDone), client.lost_reason)
        await factory.all_closed()
