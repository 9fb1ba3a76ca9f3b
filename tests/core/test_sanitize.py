"""
Tests for L{chatservice.core.sanitize.clean}: what it removes from one line of
client input, and what it must leave alone.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatservice.core import sanitize
from chatservice.core.sanitize import clean

# What must never come out of clean(): C0 controls (tab included: it becomes
# a space), DEL, C1 controls, bidirectional embeddings, overrides and
# isolates, and the line and paragraph separators.
FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")

IAC = b"\xff"
SE, SB, WILL, WONT, DO, DONT = b"\xf0", b"\xfa", b"\xfb", b"\xfc", b"\xfd", b"\xfe"
ESC = "\x1b"
# The 8-bit forms of CSI, OSC and the String Terminator, as UTF-8.
CSI8 = "\u009b"
OSC8 = "\u009d"
ST8 = "\u009c"

# Plain text that must come through untouched, byte for byte.
PLAIN = [
    "hello, world",
    "Zoë ate crème brûlée at the café",
    "日本語のテキスト",
    "Ελληνικά και русский",
    "عربي שלום",  # right-to-left letters are text, not controls
    "emoji 😀 and 🇫🇷 flags and 👍🏽",
    "symbols ← → ♥ ✓ € ™ ½ ␛ ␀",  # pictures of controls are fine
    "ascii punctuation !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "[lobby] <alice> not a real server line, just text",
    "x",
    "   leading and trailing spaces   ",
    "\ufffd already a replacement character",
]


class FastPathTests(SynchronousTestCase):
    def test_plainTextUnchanged(self) -> None:
        """
        Printable text comes out exactly as it went in.
        """
        for text in PLAIN:
            with self.subTest(text=text):
                self.assertEqual(clean(text.encode("utf-8")), text)

    def test_emptyLine(self) -> None:
        self.assertEqual(clean(b""), "")

    def test_plainTextTakesFastPath(self) -> None:
        """
        Printable text is not run through the escape and control-character
        expressions at all (white box: those are replaced by ones that
        fail if used).
        """

        class Boom:
            def sub(self, *args: object) -> str:
                raise AssertionError("slow path taken for printable text")

        self.patch(sanitize, "_ESCAPES", Boom())
        self.patch(sanitize, "_UNSAFE", Boom())
        for text in PLAIN:
            with self.subTest(text=text):
                self.assertEqual(clean(text.encode("utf-8")), text)

    def test_returnsStr(self) -> None:
        self.assertIsInstance(clean(b"abc"), str)
        self.assertIsInstance(clean(b"a\x1bb"), str)


class ControlCharacterTests(SynchronousTestCase):
    def test_c0Removed(self) -> None:
        """
        Every C0 control other than tab is removed, wherever it is.
        """
        for code in range(0x20):
            if code == 0x09 or code == 0x1B:
                continue
            char = chr(code).encode("ascii")
            with self.subTest(code=hex(code)):
                self.assertEqual(clean(b"ab" + char + b"cd" + char), "abcd")

    def test_carriageReturnAndLineFeedRemoved(self) -> None:
        """
        A CR or LF inside a line cannot start a new line on the terminal.
        """
        self.assertEqual(
            clean(b"x\r*** You are now an operator"), "x*** You are now an operator"
        )
        self.assertEqual(clean(b"a\nb\r\nc"), "abc")

    def test_delRemoved(self) -> None:
        self.assertEqual(clean(b"\x7fa\x7f\x7fb\x7f"), "ab")

    def test_backspaceRemoved(self) -> None:
        """
        Backspaces cannot overwrite what was already printed.
        """
        self.assertEqual(clean(b"hi\x08\x08XX"), "hiXX")

    def test_nulAndBellRemoved(self) -> None:
        self.assertEqual(clean(b"\x00a\x07b\x00"), "ab")

    def test_onlyControlsLeavesNothing(self) -> None:
        self.assertEqual(clean(bytes(range(0x20)) + b"\x7f"), " ")
        self.assertEqual(clean(b"\x00\x01\x07\x08\x0b\x0c\x7f"), "")

    def test_c1Removed(self) -> None:
        """
        Every C1 control (U+0080 to U+009F, as UTF-8) is removed. Some of
        them introduce sequences that run to the end of the line, so each
        is tried at the end.
        """
        for code in range(0x80, 0xA0):
            with self.subTest(code=hex(code)):
                self.assertEqual(clean(("ab" + chr(code)).encode("utf-8")), "ab")

    def test_c1NotIntroducingSequencesRemovedMidLine(self) -> None:
        introducers = {0x90, 0x98, 0x9B, 0x9D, 0x9E, 0x9F}
        for code in range(0x80, 0xA0):
            if code in introducers:
                continue
            with self.subTest(code=hex(code)):
                text = "ab" + chr(code) + "cd"
                self.assertEqual(clean(text.encode("utf-8")), "abcd")

    def test_nextLineRemoved(self) -> None:
        """
        U+0085 NEXT LINE is a C1 control some terminals treat as a newline.
        """
        self.assertEqual(clean("a\u0085b".encode()), "ab")


class TabTests(SynchronousTestCase):
    def test_tabBecomesSpace(self) -> None:
        self.assertEqual(clean(b"a\tb"), "a b")

    def test_eachTabOneSpace(self) -> None:
        self.assertEqual(clean(b"\ta\t\tb\t"), " a  b ")

    def test_tabWithOtherControls(self) -> None:
        self.assertEqual(clean(b"a\t\x07b\x1b[1m\tc"), "a b c")


class UnicodeFormatTests(SynchronousTestCase):
    def test_bidiControlsRemoved(self) -> None:
        """
        Embeddings, overrides (U+202A to U+202E) and isolates (U+2066 to
        U+2069) are removed.
        """
        for code in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]:
            with self.subTest(code=hex(code)):
                text = "ab" + chr(code) + "cd" + chr(code)
                self.assertEqual(clean(text.encode("utf-8")), "abcd")

    def test_trojanSourceLine(self) -> None:
        """
        The classic right-to-left override that makes C{exe.txt} display
        as C{txt.exe}.
        """
        text = "invoice_\u202etxt.exe"
        self.assertEqual(clean(text.encode("utf-8")), "invoice_txt.exe")

    def test_lineAndParagraphSeparatorsRemoved(self) -> None:
        self.assertEqual(clean("a\u2028b\u2029c".encode()), "abc")

    def test_emojiZwjSequenceKept(self) -> None:
        """
        Zero-width joiners glue emoji together; text keeps them, with the
        variation selectors and skin tone modifiers.
        """
        for text in [
            "family \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
            "coder \U0001f469\U0001f3fd\u200d\U0001f4bb",
            "rainbow flag \U0001f3f3\ufe0f\u200d\U0001f308",
            "heart \u2764\ufe0f",
        ]:
            with self.subTest(text=text):
                self.assertEqual(clean(text.encode("utf-8")), text)

    def test_emojiZwjKeptNextToRemovedControls(self) -> None:
        """
        The slow path (taken because of the ESC) keeps the joiner too.
        """
        text = "\x1b[1m\U0001f468\u200d\U0001f469\x1b[0m"
        self.assertEqual(clean(text.encode("utf-8")), "\U0001f468\u200d\U0001f469")

    def test_noBreakSpaceKept(self) -> None:
        self.assertEqual(clean("10\u00a0km".encode()), "10\u00a0km")
        self.assertEqual(clean("10\u00a0km\x07".encode()), "10\u00a0km")

    def test_otherSpacesKept(self) -> None:
        text = "em\u2003space, thin\u2009space, ideographic\u3000space"
        self.assertEqual(clean(text.encode("utf-8")), text)


class InvalidUtf8Tests(SynchronousTestCase):
    def assertCleans(self, raw: bytes, expected: str) -> None:
        result = clean(raw)
        self.assertEqual(result, expected)
        self.assertIsNone(FORBIDDEN.search(result))

    def test_truncatedAtEnd(self) -> None:
        self.assertCleans(b"caf\xc3", "caf\ufffd")
        self.assertCleans(b"euro \xe2\x82", "euro \ufffd")
        self.assertCleans(b"smile \xf0\x9f\x98", "smile \ufffd")

    def test_truncatedMidLine(self) -> None:
        self.assertCleans(b"a\xe2\x82 b", "a\ufffd b")
        self.assertCleans(b"a\xc3b", "a\ufffdb")

    def test_loneContinuationBytes(self) -> None:
        self.assertCleans(b"\x80x\xbf", "\ufffdx\ufffd")

    def test_overlongSlash(self) -> None:
        """
        Overlong forms of C{/} never decode to C{/}.
        """
        self.assertCleans(b"\xc0\xafetc", "\ufffd\ufffdetc")
        self.assertCleans(b"\xe0\x80\xafetc", "\ufffd\ufffd\ufffdetc")
        self.assertCleans(b"\xf0\x80\x80\xafetc", "\ufffd" * 4 + "etc")

    def test_overlongControls(self) -> None:
        """
        Overlong forms of ESC, LF and NUL are not decoded to them.
        """
        self.assertCleans(b"\xc0\x9b[2J", "\ufffd\ufffd[2J")
        self.assertCleans(b"a\xc0\x8ab", "a\ufffd\ufffdb")
        self.assertCleans(b"a\xc0\x80b", "a\ufffd\ufffdb")

    def test_encodedSurrogates(self) -> None:
        self.assertCleans(b"\xed\xa0\x80", "\ufffd\ufffd\ufffd")
        self.assertCleans(b"\xed\xa0\xbd\xed\xb8\x80", "\ufffd" * 6)

    def test_aboveUnicodeRange(self) -> None:
        self.assertCleans(b"\xf4\x90\x80\x80", "\ufffd" * 4)
        self.assertCleans(b"\xf5\x80\x80\x80", "\ufffd" * 4)

    def test_latin1(self) -> None:
        self.assertCleans(b"caf\xe9", "caf\ufffd")

    def test_c1AsRawBytes(self) -> None:
        """
        A raw C1 byte (as an 8-bit terminal would take it) is not UTF-8:
        it is replaced, never passed on.
        """
        self.assertCleans(b"\x9b2Jx", "\ufffd2Jx")


class TelnetTests(SynchronousTestCase):
    def test_negotiationStripped(self) -> None:
        for command in [WILL, WONT, DO, DONT]:
            with self.subTest(command=command):
                self.assertEqual(clean(b"a" + IAC + command + b"\x18b"), "ab")

    def test_negotiationBurst(self) -> None:
        """
        What a telnet client sends on connecting, followed by typed text.
        """
        raw = (
            IAC + WILL + b"\x18"
            + IAC + WILL + b"\x1f"
            + IAC + WILL + b"\x20"
            + IAC + DO + b"\x01"
            + IAC + DO + b"\x03"
            + IAC + WONT + b"\x22"
            + IAC + DONT + b"\x05"
            + b"hello"
        )  # fmt: skip
        self.assertEqual(clean(raw), "hello")

    def test_iacIac(self) -> None:
        self.assertEqual(clean(b"a" + IAC + IAC + b"b"), "ab")

    def test_subnegotiation(self) -> None:
        """
        IAC SB ... IAC SE, here a terminal type and a window size, goes
        whole.
        """
        ttype = IAC + SB + b"\x18\x00xterm-256color" + IAC + SE
        naws = IAC + SB + b"\x1f\x00\x50\x00\x18" + IAC + SE
        self.assertEqual(clean(b"a" + ttype + b"b" + naws + b"c"), "abc")

    def test_subnegotiationWithEscapedIac(self) -> None:
        """
        A window 255 columns wide doubles the IAC inside the subnegotiation.
        """
        naws = IAC + SB + b"\x1f\x00" + IAC + IAC + b"\x00\x18" + IAC + SE
        self.assertEqual(clean(naws + b"ok"), "ok")

    def test_subnegotiationHidesEscape(self) -> None:
        raw = IAC + SB + b"\x18\x00\x1b[2J\x1b]0;x\x07" + IAC + SE + b"ok"
        self.assertEqual(clean(raw), "ok")

    def test_unterminatedSubnegotiation(self) -> None:
        """
        A subnegotiation with no IAC SE runs to the end of the line.
        """
        self.assertEqual(clean(b"hi" + IAC + SB + b"\x18\x00xterm"), "hi")
        self.assertEqual(clean(IAC + SB), "")

    def test_singleByteCommands(self) -> None:
        """
        NOP, Data Mark, Break, Interrupt Process (what ^C sends), Abort
        Output, Are You There, Erase Character, Erase Line and Go Ahead.
        """
        for command in b"\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9":
            with self.subTest(command=hex(command)):
                self.assertEqual(clean(b"a" + IAC + bytes([command]) + b"b"), "ab")

    def test_interruptAndTimingMark(self) -> None:
        """
        Telnet's ^C: IAC IP, IAC DO TIMING-MARK.
        """
        self.assertEqual(clean(IAC + b"\xf4" + IAC + DO + b"\x06"), "")

    def test_iacAtEndOfLine(self) -> None:
        self.assertEqual(clean(b"text" + IAC), "text")
        self.assertEqual(clean(b"text" + IAC + WILL), "text")

    def test_iacInsideEscapeSequence(self) -> None:
        """
        Telnet bytes are taken out before escapes are looked for, so they
        cannot hide an escape sequence from the escape filter.
        """
        self.assertEqual(clean(b"\x1b" + IAC + WILL + b"\x01[2Jx"), "x")


class CsiTests(SynchronousTestCase):
    def test_sevenBitSequences(self) -> None:
        for sequence in [
            "\x1b[2J",  # clear screen
            "\x1b[H",  # cursor home
            "\x1b[10;20H",  # cursor position
            "\x1b[1;31m",  # SGR colour
            "\x1b[38;2;255;0;0m",  # truecolour
            "\x1b[0m",
            "\x1b[?1049h",  # alternate screen
            "\x1b[?25l",  # hide cursor
            "\x1b[!p",  # soft reset (intermediate byte)
            "\x1b[6n",  # cursor position report: makes the terminal type
            "\x1b[21t",  # window title report
            "\x1b[5A",
            "\x1b[K",
        ]:
            with self.subTest(sequence=sequence):
                self.assertEqual(clean(f"a{sequence}b".encode()), "ab")

    def test_eightBitSequences(self) -> None:
        """
        CSI as the C1 control U+009B (UTF-8 C2 9B).
        """
        for sequence in ["2J", "31m", "?25l", "10;20H", "0m"]:
            with self.subTest(sequence=sequence):
                self.assertEqual(clean(f"a{CSI8}{sequence}b".encode()), "ab")
        self.assertEqual(clean(b"a\xc2\x9b2J\xc2\x9b31mred"), "ared")

    def test_unterminatedCsi(self) -> None:
        self.assertEqual(clean(b"text\x1b[12;"), "text")
        self.assertEqual(clean(f"text{CSI8}12".encode()), "text")


class OscTests(SynchronousTestCase):
    def test_terminatedByBel(self) -> None:
        self.assertEqual(clean(b"a\x1b]0;new title\x07b"), "ab")

    def test_terminatedByEscBackslash(self) -> None:
        self.assertEqual(clean(b"a\x1b]0;new title\x1b\\b"), "ab")

    def test_terminatedByEightBitSt(self) -> None:
        self.assertEqual(clean(f"a\x1b]2;title{ST8}b".encode()), "ab")

    def test_eightBitOsc(self) -> None:
        self.assertEqual(clean(f"a{OSC8}0;title\x07b".encode()), "ab")
        self.assertEqual(clean(f"a{OSC8}0;title{ST8}b".encode()), "ab")

    def test_unterminated(self) -> None:
        """
        An OSC with no terminator runs to the end of the line, as the
        terminal would take it.
        """
        self.assertEqual(clean(b"a\x1b]0;title without an end"), "a")
        self.assertEqual(clean(f"a{OSC8}0;title".encode()), "a")

    def test_clipboardWrite(self) -> None:
        """
        OSC 52 would put attacker-chosen text on the reader's clipboard.
        """
        self.assertEqual(clean(b"\x1b]52;c;cm0gLXJmIH4K\x07look"), "look")
        self.assertEqual(clean(b"\x1b]52;c;cm0gLXJmIH4K\x1b\\look"), "look")

    def test_hyperlinkKeepsItsText(self) -> None:
        raw = b"\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\"
        self.assertEqual(clean(raw), "click me")

    def test_escInsideOscEndsIt(self) -> None:
        """
        An ESC that is not a terminator still ends the OSC; what follows is
        filtered on its own.
        """
        self.assertEqual(clean(b"\x1b]0;title\x1b[31mred"), "red")


class OtherEscapeTests(SynchronousTestCase):
    def test_stringCommands(self) -> None:
        """
        DCS, SOS, PM and APC, in 7-bit and 8-bit form.
        """
        for sequence in [
            "\x1bP+q544e\x1b\\",  # DCS (XTGETTCAP)
            "\x1bXsos\x1b\\",
            "\x1b^pm\x1b\\",
            "\x1b_apc\x1b\\",
            "\u0090dcs\u009c",
            "\u0098sos\u009c",
            "\u009epm\u009c",
            "\u009fapc\u009c",
        ]:
            with self.subTest(sequence=sequence):
                self.assertEqual(clean(f"a{sequence}b".encode()), "ab")

    def test_twoCharacterEscapes(self) -> None:
        for sequence in [
            "\x1bc",  # full reset
            "\x1b7",  # save cursor
            "\x1b8",  # restore cursor
            "\x1bM",  # reverse index
            "\x1b(0",  # DEC line drawing character set
            "\x1b#8",  # DECALN: fill the screen with E
            "\x1b=",
        ]:
            with self.subTest(sequence=sequence):
                self.assertEqual(clean(f"a{sequence}b".encode()), "ab")

    def test_loneEsc(self) -> None:
        self.assertEqual(clean(b"abc\x1b"), "abc")
        self.assertEqual(clean(b"\x1b"), "")

    def test_escBeforeNonAscii(self) -> None:
        self.assertEqual(clean("\x1bé".encode()), "é")

    def test_everythingAtOnce(self) -> None:
        raw = (
            IAC + WILL + b"\x18"
            + b"\x1b]0;t\x07\x1b[2J\x1b[H"
            + b"caf\xc3\xa9\t\xc3"
            + "\u202e\u2066\u2028".encode()
            + b"\x00\x7f\xc2\x9b31m!"
        )  # fmt: skip
        self.assertEqual(clean(raw), "café \ufffd!")


# Text that clean() must pass through unchanged: anything but the forbidden
# characters, tab (which becomes a space) and surrogates (not encodable).
_SAFE_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8",
        exclude_characters="\t\x1b",
    ).filter(lambda c: FORBIDDEN.match(c) is None)
)


class PropertyTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200))
    def test_outputAlwaysSafe(self, raw: bytes) -> None:
        result = clean(raw)
        self.assertIsNone(FORBIDDEN.search(result), repr(result))

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200))
    def test_idempotent(self, raw: bytes) -> None:
        once = clean(raw)
        self.assertEqual(clean(once.encode("utf-8")), once)

    @settings(max_examples=300, deadline=None)
    @given(_SAFE_TEXT)
    def test_safeTextUnchanged(self, text: str) -> None:
        """
        Nothing but the documented classes is ever removed.
        """
        self.assertEqual(clean(text.encode("utf-8")), text)
