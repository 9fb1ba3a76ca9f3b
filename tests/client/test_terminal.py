"""
Interactive use at a terminal (L{chatservice.client.terminal}): the line
editor, the display, and the terminal mode on a pseudo-terminal of this
process.
"""

from __future__ import annotations

import os
import signal
import termios

from twisted.trial import unittest

from chatservice.client.terminal import Display, LineEditor, TerminalMode, display_width


class LineEditorTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.editor = LineEditor()

    def test_typing(self) -> None:
        self.assertEqual(self.editor.feed(b"hel"), [])
        self.assertEqual(self.editor.text, "hel")
        self.assertEqual(self.editor.feed(b"lo\rnext"), ["hello"])
        self.assertEqual(self.editor.text, "next")

    def test_enter(self) -> None:
        self.assertEqual(
            self.editor.feed(b"a\nb\rc\r\nd\n\n"), ["a", "b", "c", "d", ""]
        )

    def test_crlf_split(self) -> None:
        self.assertEqual(self.editor.feed(b"a\r"), ["a"])
        self.assertEqual(self.editor.feed(b"\nb\n"), ["b"])

    def test_utf8_split_across_reads(self) -> None:
        data = "héllo wörld €".encode()
        for i in range(len(data)):
            self.editor.feed(data[i : i + 1])
        self.assertEqual(self.editor.text, "héllo wörld €")

    def test_invalid_utf8(self) -> None:
        self.editor.feed(b"a\xffb")
        self.assertEqual(self.editor.text, "a\ufffdb")

    def test_backspace(self) -> None:
        self.editor.feed(b"abc\x7f\x7fd\x08e")
        self.assertEqual(self.editor.text, "ae")
        self.editor.feed(b"\x7f\x7f\x7f")
        self.assertEqual(self.editor.text, "")

    def test_backspace_removes_combining_marks_with_their_letter(self) -> None:
        self.editor.feed("xe\u0301".encode())
        self.editor.feed(b"\x7f")
        self.assertEqual(self.editor.text, "x")

    def test_kill_line_and_word(self) -> None:
        self.editor.feed(b"say hello  there  \x17")
        self.assertEqual(self.editor.text, "say hello  ")
        self.editor.feed(b"\x17")
        self.assertEqual(self.editor.text, "say ")
        self.editor.feed(b"\x15")
        self.assertEqual(self.editor.text, "")

    def test_ctrl_d(self) -> None:
        self.editor.feed(b"abc\x04")
        self.assertFalse(self.editor.ended)
        self.assertEqual(self.editor.text, "abc")
        self.assertEqual(self.editor.feed(b"\n\x04more\n"), ["abc"])
        self.assertTrue(self.editor.ended)
        self.assertEqual(self.editor.feed(b"x\n"), [])

    def test_escape_sequences_are_ignored(self) -> None:
        # Arrows (CSI and SS3), Delete, F5, Alt-x.
        self.editor.feed(b"a\x1b[Ab\x1bOBc\x1b[3~d\x1b[15;2~e\x1bxf")
        self.assertEqual(self.editor.text, "abcdef")

    def test_escape_split_across_reads(self) -> None:
        for data in (b"a\x1b", b"[", b"1", b";5", b"D", b"b"):
            self.editor.feed(data)
        self.assertEqual(self.editor.text, "ab")

    def test_stray_escape_keeps_enter(self) -> None:
        """
        Escape, then Enter: the line is still sent, as Enter after a
        broken sequence is.
        """
        self.assertEqual(self.editor.feed(b"hello\x1b\r"), ["hello"])
        self.assertEqual(self.editor.feed(b"ab\x1b[1\r"), ["ab"])
        self.assertEqual(self.editor.feed(b"cd\x1b\x7fe"), [])
        self.assertEqual(self.editor.text, "ce")

    def test_broken_escape(self) -> None:
        self.editor.feed(b"\x1b[1\rx")
        self.assertEqual(self.editor.text, "x")

    def test_control_characters_are_ignored(self) -> None:
        self.editor.feed(b"a\x00\x01\x07\tb\x1f")
        self.assertEqual(self.editor.text, "ab")

    def test_redraw(self) -> None:
        self.editor.feed(b"ab\x0c")
        self.assertTrue(self.editor.redraw)
        self.assertEqual(self.editor.text, "ab")


class DisplayTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.written: list[bytes] = []
        self.columns = 80
        self.display = Display(self.written.append, lambda: self.columns)

    def screen(self) -> bytes:
        data = b"".join(self.written)
        self.written.clear()
        return data

    def test_echo(self) -> None:
        self.display.show_input("he")
        self.display.show_input("hel")
        self.assertEqual(self.screen(), b"hel")

    def test_edit_redraws(self) -> None:
        self.display.show_input("hel")
        self.screen()
        self.display.show_input("he")
        self.assertEqual(self.screen(), b"\r\x1b[Khe")
        self.display.show_input("")
        self.assertEqual(self.screen(), b"\r\x1b[K")

    def test_output_keeps_typed_line_below(self) -> None:
        self.display.show_input("hel")
        self.screen()
        self.display.output(b"[lobby] <bob> hi\n")
        self.assertEqual(self.screen(), b"\r\x1b[K[lobby] <bob> hi\nhel")

    def test_output_without_typed_line(self) -> None:
        self.display.output(b"one\ntwo\n")
        self.assertEqual(self.screen(), b"one\ntwo\n")

    def test_partial_output_waits_for_its_end(self) -> None:
        self.display.show_input("x")
        self.screen()
        self.display.output(b"one\ntw")
        self.assertEqual(self.screen(), b"\r\x1b[Kone\nx")
        self.display.output(b"o")
        self.assertEqual(self.screen(), b"")
        self.display.output(b"\n")
        self.assertEqual(self.screen(), b"\r\x1b[Ktwo\nx")

    def test_wrapped_typed_line(self) -> None:
        self.columns = 10
        self.display.show_input("a" * 25)
        self.screen()
        self.display.output(b"line\n")
        self.assertEqual(self.screen(), b"\r\x1b[2A\x1b[Jline\n" + b"a" * 25)
        # A line exactly as wide as the terminal ends on its own row.
        self.display.show_input("b" * 10)
        self.assertEqual(self.screen(), b"\r\x1b[2A\x1b[J" + b"b" * 10)
        self.display.output(b"line\n")
        self.assertEqual(self.screen(), b"\r\x1b[Kline\n" + b"b" * 10)

    def test_wide_characters(self) -> None:
        self.assertEqual(display_width("日本語 ok"), 9)
        self.assertEqual(display_width("e\u0301"), 1)
        self.columns = 4
        self.display.show_input("日本語")
        self.screen()
        self.display.output(b"x\n")
        self.assertEqual(self.screen(), b"\r\x1b[1A\x1b[Jx\n" + "日本語".encode())

    def test_enter_keeps_the_line(self) -> None:
        self.display.show_input("hello")
        self.display.enter("hello")
        self.display.output(b"reply\n")
        self.assertEqual(self.screen(), b"hello\nreply\n")

    def test_interject(self) -> None:
        self.display.show_input("ab")
        self.screen()
        self.display.interject(b"chat-client: note\n")
        self.assertEqual(self.screen(), b"\r\x1b[Kchat-client: note\nab")

    def test_finish(self) -> None:
        self.display.output(b"partial")
        self.display.show_input("unsent")
        self.screen()
        self.display.finish()
        self.assertEqual(self.screen(), b"\r\x1b[Kpartial\nunsent\n")
        self.assertFalse(self.display.showing_input)

    def test_forget(self) -> None:
        self.display.output(b"partial")
        self.display.show_input("unsent")
        self.display.forget()
        self.screen()
        self.display.finish()
        self.assertEqual(self.screen(), b"")
        self.assertFalse(self.display.showing_input)

    def test_redraw_and_show_again(self) -> None:
        self.display.show_input("ab")
        self.screen()
        self.display.redraw()
        self.assertEqual(self.screen(), b"\x1b[H\x1b[2Jab")
        self.display.show_again()
        self.assertEqual(self.screen(), b"\r\x1b[Kab")


class TerminalModeTests(unittest.SynchronousTestCase):
    """
    L{TerminalMode} on a pseudo-terminal of this process.
    """

    def setUp(self) -> None:
        master, self.slave = os.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, self.slave)
        self.original = termios.tcgetattr(self.slave)

    def test_enter_and_restore(self) -> None:
        mode = TerminalMode(self.slave)
        mode.enter()
        self.assertTrue(mode.active)
        attributes = termios.tcgetattr(self.slave)
        self.assertFalse(attributes[3] & termios.ICANON)
        self.assertFalse(attributes[3] & termios.ECHO)
        self.assertTrue(attributes[3] & termios.ISIG)
        self.assertTrue(attributes[1] & termios.OPOST)
        self.assertEqual(attributes[6][termios.VMIN], 1)
        mode.restore()
        mode.restore()
        self.assertFalse(mode.active)
        self.assertEqual(termios.tcgetattr(self.slave), self.original)

    def test_suspend(self) -> None:
        """
        On Ctrl-Z the terminal is restored before the process stops, and
        taken back (and the screen redrawn) when it continues.
        """
        seen: list[tuple[int, bool]] = []

        def kill(pid: int, signum: int) -> None:
            icanon = bool(termios.tcgetattr(self.slave)[3] & termios.ICANON)
            seen.append((signum, icanon))

        resumed: list[None] = []
        mode = TerminalMode(self.slave, kill=kill)
        mode.resumed = lambda: resumed.append(None)
        previous = signal.getsignal(signal.SIGTSTP)
        mode.enter()
        mode.handle_suspend()
        try:
            handler = signal.getsignal(signal.SIGTSTP)
            assert callable(handler)
            handler(signal.SIGTSTP, None)
        finally:
            mode.unhandle_suspend()
            mode.restore()
        self.assertEqual(seen, [(signal.SIGTSTP, True)])
        self.assertEqual(resumed, [None])
        self.assertEqual(signal.getsignal(signal.SIGTSTP), previous)

    def test_restore_after_hangup(self) -> None:
        master, slave = os.openpty()
        mode = TerminalMode(slave)
        mode.enter()
        os.close(slave)
        os.close(master)
        mode.restore()
        self.assertFalse(mode.active)
