"""
Moderation across front ends, through the installed C{twistd -n chat} over
real loopback sockets: an IRC operator bans a telnet user by address.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.support.helpers import SocketClient, irc_server


class AddressBanTests(SynchronousTestCase):
    def test_ircOperatorBansTelnetUser(self) -> None:
        """
        An IRC user who made C{#lobby} bans a telnet user's address with
        C{MODE +b}: the telnet user is put out with the reason, cannot come
        back (nor can a new connection from that address enter), and the
        room carries on. Everyone here is on 127.0.0.1, so the ban matches
        the operator too, which operators do not mind: bans never put out
        a room's operators.
        """
        server, irc_port = irc_server(self)
        assert server.tcp_port is not None
        irc = SocketClient(self, irc_port)
        irc.send(b"NICK mod\r\nUSER mod 0 * :Moderator\r\nJOIN #lobby\r\n")
        irc.read_until(lambda line: b" 366 mod #lobby " in line)
        telnet = SocketClient(self, server.tcp_port)
        telnet.welcome()
        telnet.send(b"/nick troll\r\n")
        telnet.read_until(lambda got: b"known as troll" in got)
        irc.read_until(lambda got: b" NICK :troll" in got)

        irc.send(b"MODE #lobby +b *!*@127.0.0.1\r\nKICK #lobby troll :flooding\r\n")
        self.assertEqual(
            irc.read_until(lambda got: b" MODE #lobby " in got),
            b":mod!mod@chatservice MODE #lobby +b *!*@127.0.0.1\r\n",
        )
        self.assertEqual(
            irc.read_until(lambda got: b" KICK #lobby " in got),
            b":mod!mod@chatservice KICK #lobby troll Banned\r\n",
        )
        self.assertEqual(
            telnet.read_until(lambda got: b"kicked" in got),
            b"[lobby] <-- troll was kicked by mod (Banned)\r\n",
        )
        # The KICK after it finds troll gone.
        self.assertIn(
            b" 441 mod troll #lobby ", irc.read_until(lambda g: b" 441 " in g)
        )

        telnet.send(b"/join lobby\r\nstill here?\r\n")
        self.assertEqual(
            telnet.read_until(lambda got: got.startswith(b"!!!")),
            b"!!! You are banned from lobby.\r\n",
        )
        self.assertEqual(
            telnet.read_until(lambda got: got.startswith(b"!!!")),
            b"!!! You are not in any room; /join one first.\r\n",
        )
        again = SocketClient(self, server.tcp_port)
        again.welcome()
        self.assertEqual(
            again.read_until(lambda got: got.startswith(b"!!!")),
            b"!!! You are banned from lobby.\r\n",
        )

        irc.send(b"PRIVMSG #lobby :order restored\r\nMODE #lobby b\r\n")
        self.assertIn(
            b" 367 mod #lobby *!*@127.0.0.1 mod",
            irc.read_until(lambda got: b" 367 " in got),
        )
        irc.read_until(lambda got: b" 368 " in got)
        irc.send(b"QUIT\r\n")
        irc.read_to_end()
        output = server.stop()
        self.assertNotIn(b"Traceback", server.output + output)
