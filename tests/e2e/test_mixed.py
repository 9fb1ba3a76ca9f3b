"""
Line and IRC users in one room, through the installed C{twistd -n chat}
over real loopback sockets, as people would use it.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.support.helpers import SocketClient, irc_server


class MixedTests(SynchronousTestCase):
    def test_lineAndIRCInOneRoom(self) -> None:
        server, irc_port = irc_server(self)
        assert server.tcp_port is not None
        irc = SocketClient(self, irc_port)
        irc.send(b"NICK alice\r\nUSER alice 0 * :Alice\r\nJOIN #lobby\r\n")
        irc.read_until(lambda line: b" 366 alice #lobby " in line)
        line = SocketClient(self, server.tcp_port)
        line.welcome()
        line.send(b"/nick bob\r\nhello from nc\r\n/me waves\r\n/msg alice psst\r\n")
        self.assertEqual(
            irc.read_until(lambda got: b"PRIVMSG #lobby" in got),
            b":bob!bob@chatservice PRIVMSG #lobby :hello from nc\r\n",
        )
        self.assertEqual(
            irc.read_until(lambda got: b"PRIVMSG" in got),
            b":bob!bob@chatservice PRIVMSG #lobby :\x01ACTION waves\x01\r\n",
        )
        self.assertEqual(
            irc.read_until(lambda got: b"PRIVMSG" in got),
            b":bob!bob@chatservice PRIVMSG alice :psst\r\n",
        )
        irc.send(b"PRIVMSG #lobby :hi bob\r\nPRIVMSG bob :back\r\nNICK alicia\r\n")
        self.assertEqual(
            line.read_until(lambda got: got.startswith(b"[lobby] <alice>")),
            b"[lobby] <alice> hi bob\r\n",
        )
        self.assertEqual(
            line.read_until(lambda got: got.startswith(b"*")), b"*alice* back\r\n"
        )
        self.assertEqual(
            line.read_until(lambda got: b"known as" in got),
            b"[lobby] --- alice is now known as alicia\r\n",
        )
        irc.send(b"QUIT :bye\r\n")
        self.assertEqual(
            line.read_until(lambda got: b"quit" in got),
            b"[lobby] <-- alicia quit (bye)\r\n",
        )
