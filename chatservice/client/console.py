"""
Standard input and output of C{chat-client}: what is typed goes to the
server, what the server sends is written out.

L{Console} sets up one session's standard input and output: a plain
L{Terminal} on pipes, byte for byte, or, when a person types at a terminal
that shows the output, an L{InteractiveTerminal} that edits lines itself
and keeps the line being typed whole under incoming output (the pieces are
in L{chatservice.client.terminal}). Either way it writes the client's own
messages to standard error, and puts the terminal back as it was however
the client ends.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IReactorCore,
    IReactorFromThreads,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.stdio import StandardIO
from twisted.python.failure import Failure
from zope.interface import implementer

from chatservice.client.connection import Link, is_quit
from chatservice.client.terminal import Display, LineEditor, TerminalMode


def complain(message: str) -> None:
    """
    Say C{message} on standard error, as the client's own words.
    """
    sys.stderr.write(f"chat-client: {message}\n")
    sys.stderr.flush()


@implementer(IHalfCloseableProtocol)
class Terminal(Protocol):
    """
    Standard input and output: sends what is typed to the server.

    @ivar ended: input has ended, or the user typed C{/quit}; the server
        closing the connection is then expected.
    @ivar closed: fires when standard output has been flushed and closed.
    """

    def __init__(self, server: Link) -> None:
        self.server = server
        self.ended = False
        self.closed: Deferred[None] = Deferred()
        self._partial = b""
        self._input_ended = False

    def dataReceived(self, data: bytes) -> None:
        self.server.send(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()[-64:]
        for line in lines:
            if is_quit(line):
                self.ended = True

    def readConnectionLost(self) -> None:
        self.ended = True
        if not self._input_ended:
            self._input_ended = True
            self.server.end_input()

    def writeConnectionLost(self) -> None:
        # Nobody is reading our output any more (as with `| head`). Standard
        # output is gone, so there is nothing left to flush or close.
        self.ended = True
        self.server.close()
        self._closed()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closed()

    def _closed(self) -> None:
        if not self.closed.called:
            self.closed.callback(None)


class InteractiveTerminal(Terminal):
    """
    A terminal with a person at it: keys are edited into lines here (the
    terminal's own editing is off), and each finished line is sent whole.
    """

    def __init__(self, server: Link, display: Display) -> None:
        super().__init__(server)
        self.display = display
        self.editor = LineEditor()

    def dataReceived(self, data: bytes) -> None:
        for line in self.editor.feed(data):
            self.display.enter(line)
            encoded = line.encode("utf-8") + b"\n"
            self.server.send(encoded)
            if is_quit(encoded):
                self.ended = True
        if self.editor.redraw:
            self.editor.redraw = False
            self.display.redraw()
        self.display.show_input(self.editor.text)
        if self.editor.ended:
            # Ctrl-D on an empty line.
            self.readConnectionLost()


class Console:
    """
    Standard input and output for a session: a plain L{Terminal} on pipes,
    or, when both are a terminal, an L{InteractiveTerminal} with its
    L{Display} and L{TerminalMode}, put back as it was however the client
    ends.

    @ivar output: where what the server sends is written.
    """

    def __init__(
        self,
        reactor: IReactorCore,
        link: Link,
        interactive: bool,
        stdio_factory: Callable[..., StandardIO] = StandardIO,
    ) -> None:
        self.display: Display | None = None
        self.mode: TerminalMode | None = None
        self.terminal: Terminal
        if interactive:
            self.mode = TerminalMode(0)
            self.mode.enter()
            self.display = Display(lambda data: self._stdio.write(data), _columns)
            self.terminal = InteractiveTerminal(link, self.display)
            self.output: Callable[[bytes], None] = self.display.output
            display = self.display

            def resumed() -> None:
                # Called in a signal handler: leave the writing to the reactor.
                threads = cast(IReactorFromThreads, reactor)
                threads.callFromThread(display.show_again)

            self.mode.resumed = resumed
            self.mode.handle_suspend()
        else:
            self.terminal = Terminal(link)
        self._stdio = stdio_factory(self.terminal, reactor=reactor)
        if self.display is None:
            self.output = self._stdio.write

    def complain(self, message: str) -> None:
        """
        Say C{message} on standard error; above the typed line if standard
        error is the terminal too.
        """
        if self.display is not None and os.isatty(2):
            self.display.interject(f"chat-client: {message}\n".encode())
        else:
            complain(message)

    async def close(self) -> None:
        """
        Flush and close standard output, and put the terminal back.
        """
        try:
            if self.display is not None:
                self.display.finish()
            self._stdio.loseConnection()
            await self.terminal.closed
        finally:
            self._restore()

    def abandon(self) -> None:
        """
        The client is being stopped (Ctrl-C): put the terminal back now,
        with the cursor on a line of its own. Output still buffered will
        not be written.
        """
        if self.display is not None:
            if self.display.showing_input:
                try:
                    os.write(1, b"\n")
                except OSError:
                    pass
            self.display.forget()
        self._restore()

    def _restore(self) -> None:
        if self.mode is not None:
            self.mode.unhandle_suspend()
            self.mode.restore()


def _columns() -> int:
    try:
        return os.get_terminal_size(1).columns or 80
    except OSError:
        return 80
