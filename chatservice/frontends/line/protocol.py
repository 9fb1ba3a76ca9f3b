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
from chatservice.core.errors import ChatError
from chatservice.core.events import Refused
from chatservice.core.rooms import Member
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
        self.user = LineUser.connect(
            factory.chat, self, factory.accounts, factory.operators
        )
        return self.user.member

    def linesReceived(self, lines: list[bytes | None], start: int) -> int:
        # Most lines are text said in the current room. A line whose first
        # byte is printable ASCII other than "/" is that, whatever cleaning
        # takes out of the rest (its first character stays, so it is
        # neither a command nor blank): a run of them goes to the room in
        # one call, and the core cleans each text. Anything else (telnet
        # negotiation, invalid UTF-8, a command, a blank line, a control
        # first, a line too long) is left to lineReceived.
        limit = self.limits.max_line
        texts = []
        for index in range(start, len(lines)):
            line = lines[index]
            if (
                not line
                or not 0x20 < line[0] < 0x7F
                or line[0] == 0x2F
                or len(line) > limit
                or b"\xff" in line
            ):
                break
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                break
            texts.append(text[:-1] if text.endswith("\r") else text)
        if texts:
            user = self.user
            try:
                user.say_all(texts)
            except ChatError as e:
                # One refusal for each line, as each would have had.
                for _ in texts:
                    user.chat.tell(user.member, Refused(e))
        return start + len(texts)

    def lineReceived(self, line: bytes) -> Deferred[None] | None:
        return self.handleLine(line)

    def handleLine(self, line: bytes) -> Deferred[None] | None:
        """
        Any line: decoded (invalid UTF-8 replaced, telnet negotiation
        dropped), cleaned for parsing, and handed to the commands.
        """
        decoded = sanitize.decode(line)
        text = sanitize.safe(decoded)
        if not text.strip():
            return None
        return commands.dispatch(self.user, text, decoded)


class LineFactory(StreamFactory):
    """
    Builds L{LineProtocol}s for the one chat.

    @param accounts: the accounts, if the server keeps them.
    @param operators: the server operators, if any may be.
    """

    protocol = LineProtocol
    renderer = LineRenderer()
