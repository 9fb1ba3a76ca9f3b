"""
Interactive use of C{chat-client}: the line being typed stays whole.

In the terminal's usual (canonical) mode the kernel echoes what is typed, and
a line arriving from the server lands in the middle of it. So when standard
input and output are both a terminal, the client turns off the kernel's line
editing and echo (L{TerminalMode}), edits the line itself (L{LineEditor}),
and shows it at the bottom (L{Display}): incoming output erases the typed
line, is written, and the typed line is written again after it. No curses:
only carriage return, erase-line and cursor-up, which every terminal has.
L{chatservice.client.console.Console} puts these together.
"""

from __future__ import annotations

import codecs
import os
import signal
import termios
import unicodedata
from collections.abc import Callable
from types import FrameType
from typing import Any

# Keys, as the terminal sends them.
_BACKSPACES = ("\x7f", "\x08")
_KILL_LINE = "\x15"  # Ctrl-U
_KILL_WORD = "\x17"  # Ctrl-W
_END = "\x04"  # Ctrl-D
_REDRAW = "\x0c"  # Ctrl-L
_ESCAPE = "\x1b"


class LineEditor:
    """
    The line being typed, edited by the keys that arrive: printable
    characters (UTF-8 may come split across reads), Backspace and Delete,
    Ctrl-U (erase the line), Ctrl-W (erase the last word), Enter (the line
    is done) and Ctrl-D on an empty line (end of input). Escape sequences
    (arrow and function keys) are ignored whole. No I/O.

    @ivar ended: Ctrl-D was typed on an empty line; later keys are ignored.
    @ivar redraw: Ctrl-L was typed; whoever shows the line clears it.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._characters: list[str] = []
        self._escape: str | None = None
        self._after_cr = False
        self.ended = False
        self.redraw = False

    @property
    def text(self) -> str:
        return "".join(self._characters)

    def feed(self, data: bytes) -> list[str]:
        """
        Apply the keys in C{data}; return the lines completed by Enter.
        """
        lines = []
        for character in self._decoder.decode(data):
            if self.ended:
                break
            line = self._key(character)
            if line is not None:
                lines.append(line)
        return lines

    def _key(self, key: str) -> str | None:
        if self._escape is not None:
            return self._in_escape(key)
        after_cr, self._after_cr = self._after_cr, False
        if key in "\r\n":
            if key == "\n" and after_cr:
                # A CR LF (a pasted line, or a terminal without ICRNL) is
                # one Enter.
                return None
            self._after_cr = key == "\r"
            line = self.text
            self._characters.clear()
            return line
        if key in _BACKSPACES:
            while self._characters and _is_zero_width(self._characters[-1]):
                self._characters.pop()
            if self._characters:
                self._characters.pop()
        elif key == _KILL_LINE:
            self._characters.clear()
        elif key == _KILL_WORD:
            while self._characters and self._characters[-1].isspace():
                self._characters.pop()
            while self._characters and not self._characters[-1].isspace():
                self._characters.pop()
        elif key == _END:
            if not self._characters:
                self.ended = True
        elif key == _REDRAW:
            self.redraw = True
        elif key == _ESCAPE:
            self._escape = ""
        elif key.isprintable():
            self._characters.append(key)
        return None

    def _in_escape(self, key: str) -> str | None:
        """
        Swallow an escape sequence: ESC [ parameters final (CSI), ESC O key
        (SS3), or ESC and one printable key (Alt with a key). After a lone
        ESC, Enter and the editing keys still act: a stray Escape must not
        eat the line.
        """
        sequence = self._escape or ""
        if sequence == "":
            self._escape = key if key in "[O" else None
            if self._escape is None and not key.isprintable():
                return self._key(key)
        elif sequence == "O":
            self._escape = None
        elif "\x40" <= key <= "\x7e":
            self._escape = None
        elif not "\x20" <= key <= "\x3f" or len(sequence) > 32:
            # Not a CSI sequence after all: the key is a key.
            self._escape = None
            return self._key(key)
        else:
            self._escape = sequence + key
        return None


def _is_zero_width(character: str) -> bool:
    return unicodedata.combining(character) != 0 or unicodedata.category(character) in (
        "Mn",
        "Me",
        "Cf",
    )


def display_width(text: str) -> int:
    """
    How many terminal columns C{text} takes: wide (East Asian) characters
    two, combining marks none.
    """
    width = 0
    for character in text:
        if _is_zero_width(character):
            continue
        width += 2 if unicodedata.east_asian_width(character) in "WF" else 1
    return width


class Display:
    """
    A terminal's screen with the line being typed kept below everything
    else.

    Output is shown whole lines at a time, each time erasing the typed line
    first and writing it again after; a partial line of output waits for
    its end, so the typed line never shares a row with it. Everything goes
    through one C{write}, so output, notices and echo stay in order.
    """

    def __init__(
        self, write: Callable[[bytes], None], columns: Callable[[], int]
    ) -> None:
        self._write = write
        self._columns = columns
        self._shown = ""
        self._held = b""

    def _erase(self) -> bytes:
        """
        Go back to the start of the typed line, which may have wrapped onto
        several rows, and erase it.
        """
        if not self._shown:
            return b""
        columns = max(1, self._columns())
        rows_up = (display_width(self._shown) - 1) // columns
        if rows_up:
            return b"\r\x1b[%dA\x1b[J" % rows_up
        return b"\r\x1b[K"

    def show_input(self, text: str) -> None:
        """
        The typed line is now C{text}.
        """
        if text == self._shown:
            return
        if text.startswith(self._shown):
            # Typing at the end: just echo the new characters.
            self._write(text[len(self._shown) :].encode("utf-8"))
        else:
            self._write(self._erase() + text.encode("utf-8"))
        self._shown = text

    def enter(self, line: str) -> None:
        """
        C{line} was entered: it stays on the screen, as it would have with
        the terminal's own echo, and a new typed line starts below it.
        """
        self.show_input(line)
        self._write(b"\n")
        self._shown = ""

    def redraw(self) -> None:
        """
        Clear the screen and show the typed line again (Ctrl-L).
        """
        self._write(b"\x1b[H\x1b[2J" + self._shown.encode("utf-8"))

    def show_again(self) -> None:
        """
        Write the typed line again where the cursor is, after the shell had
        the terminal (Ctrl-Z, then C{fg}).
        """
        self._write(b"\r\x1b[K" + self._shown.encode("utf-8"))

    @property
    def showing_input(self) -> bool:
        return bool(self._shown)

    def forget(self) -> None:
        """
        Show nothing more: the screen is being left as it is.
        """
        self._shown = ""
        self._held = b""

    def output(self, data: bytes) -> None:
        """
        Show C{data} from the server above the typed line.
        """
        data = self._held + data
        cut = data.rfind(b"\n") + 1
        lines, self._held = data[:cut], data[cut:]
        if lines:
            self.interject(lines)

    def interject(self, lines: bytes) -> None:
        """
        Write whole C{lines} above the typed line.
        """
        self._write(self._erase() + lines + self._shown.encode("utf-8"))

    def finish(self) -> None:
        """
        The session is over: show any partial last line of output, and end
        the typed line (which was not sent) so the shell's prompt starts on
        a line of its own.
        """
        if self._held:
            held, self._held = self._held, b""
            self.interject(held + b"\n")
        if self._shown:
            self._write(b"\n")
            self._shown = ""


class TerminalMode:
    """
    Turns off the terminal's own line editing and echo on C{fd} while the
    client edits lines itself, and puts the terminal back as it was.

    Signals stay on (ISIG), so Ctrl-C still interrupts, and output
    processing stays on, so C{\\n} still starts a new line at the left.
    Ctrl-Z gives the shell the terminal as it was, and takes it back on
    C{fg}.
    """

    def __init__(
        self,
        fd: int,
        kill: Callable[[int, int], None] = os.kill,
    ) -> None:
        self.fd = fd
        self._kill = kill
        self._saved: list[Any] | None = None
        self._previous_tstp: object = None
        self.resumed: Callable[[], None] = lambda: None

    @property
    def active(self) -> bool:
        return self._saved is not None

    def enter(self) -> None:
        self._saved = termios.tcgetattr(self.fd)
        self._apply()

    def _apply(self) -> None:
        assert self._saved is not None
        mode = termios.tcgetattr(self.fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO)
        mode[3] |= termios.ISIG
        cc = mode[6]
        cc[termios.VMIN] = 1
        cc[termios.VTIME] = 0
        # TCSANOW, not TCSAFLUSH: keep what was typed ahead.
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)

    def restore(self) -> None:
        """
        Put the terminal back as it was; safe to call more than once.
        """
        if self._saved is None:
            return
        saved, self._saved = self._saved, None
        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
        except termios.error:
            # The terminal is gone (hung up): nothing to restore.
            pass

    def handle_suspend(self) -> None:
        """
        Give the terminal back on Ctrl-Z (SIGTSTP) and take it again when
        continued; C{resumed} is called then, to redraw.
        """
        self._previous_tstp = signal.signal(signal.SIGTSTP, self._suspend)

    def unhandle_suspend(self) -> None:
        if self._previous_tstp is not None:
            signal.signal(signal.SIGTSTP, self._previous_tstp)  # type: ignore[arg-type]
            self._previous_tstp = None

    def _suspend(self, signum: int, frame: FrameType | None) -> None:
        saved = self._saved
        self.restore()
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        try:
            # Stops here until continued.
            self._kill(os.getpid(), signal.SIGTSTP)
        finally:
            signal.signal(signal.SIGTSTP, self._suspend)
            if saved is not None:
                self._saved = saved
                self._apply()
                self.resumed()
