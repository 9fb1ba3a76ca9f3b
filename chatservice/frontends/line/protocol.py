"""
The line protocol: the front end for C{nc}, telnet and C{chat-client}.

The connection's machinery (framing, flood control, the sendq, timeouts) is
L{chatservice.frontends.stream}'s; this module adds what makes it the line
protocol: a newcomer is a guest in the lobby, and each line is made safe to
show and handed to the slash commands.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from chatservice.core import sanitize
from chatservice.core.accounts import Accounts
from chatservice.core.chat import Chat
from chatservice.core.rooms import Member
from chatservice.frontends.admission import Admission
from chatservice.frontends.limits import Limits
from chatservice.frontends.line import commands
from chatservice.frontends.line.user import LineUser
from chatservice.frontends.line.wire import LineRenderer
from chatservice.frontends.stream import StreamFactory, StreamSession


class LineProtocol(StreamSession):
    """
    One line client's connection.
    """

    factory: LineFactory
    user: LineUser

    def start(self) -> Member:
        factory = self.factory
        self.user = LineUser.connect(factory.chat, self, factory.accounts)
        return self.user.member

    def lineReceived(self, line: bytes) -> Deferred[None] | None:
        decoded = sanitize.decode(line)
        text = sanitize.safe(decoded)
        if not text.strip():
            return None
        return commands.dispatch(self.user, text, decoded)


class LineFactory(StreamFactory):
    """
    Builds L{LineProtocol}s for the one chat.

    @param accounts: the accounts, if the server keeps them.
    """

    protocol = LineProtocol
    renderer = LineRenderer()

    def __init__(
        self,
        chat: Chat,
        admission: Admission,
        accounts: Accounts | None = None,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(chat, admission, limits)
        self.accounts = accounts
