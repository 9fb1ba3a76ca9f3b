"""
Hostile input, end to end through the line protocol: what a client can send
and what everyone else then receives.

  - L{CASES} is a catalogue of hostile inputs, each with the exact lines an
    observer in the same room must receive (and, for most, what the sender
    must receive). L{CatalogueTests} has one test method per case.
  - Every byte any client receives, in every test here, is checked against
    the terminal-safety invariant (L{terminal_safety_problem}).
  - L{HostileStreamTests} feeds arbitrary byte streams, cut at arbitrary
    points, and checks that nothing escapes, the invariant holds and the
    registry stays consistent.

Everything runs in memory: L{StringTransport}s and a L{Clock}.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from chatservice.core import names
from chatservice.core.chat import Chat
from chatservice.frontends.limits import Limits
from chatservice.frontends.line.protocol import LineProtocol
from tests.support.memory import Connection, Harness, discard

MAX_LINE = Limits().max_line
TOO_LONG = f"!!! Line too long (the limit is {MAX_LINE} bytes); it was dropped."

# Bytes that may appear in output only as part of a CRLF line ending.
_C0_OR_DEL = re.compile(rb"[\x00-\x1f\x7f]")
# What the decoded output must never contain.
_UNSAFE_TEXT = re.compile("[\x80-\x9f\x1b\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def terminal_safety_problem(raw: bytes) -> str | None:
    """
    What is wrong with C{raw}, all that one client was sent, or C{None}:
    it must be whole CRLF-terminated lines of valid UTF-8 with no C0
    control or DEL but the line endings, and no C1 control, ESC, bidi
    embedding, override or isolate, or line or paragraph separator.
    """
    if raw and not raw.endswith(b"\r\n"):
        return f"output does not end in CRLF: {raw[-40:]!r}"
    body = raw.replace(b"\r\n", b"")
    match = _C0_OR_DEL.search(body)
    if match is not None:
        return f"control byte {match.group()!r} in output: {raw!r}"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"output is not UTF-8 ({e}): {raw!r}"
    found = _UNSAFE_TEXT.search(text)
    if found is not None:
        return f"unsafe character {found.group()!r} in output: {text!r}"
    return None


def hostile_harness(limits: Limits) -> Harness:
    """
    A harness on which every client's output, whenever it is taken, is
    checked against the terminal-safety invariant.
    """
    return Harness(limits, check=terminal_safety_problem)


def feed(client: Connection, *chunks: bytes) -> None:
    """
    Feed each chunk to the server in its own C{dataReceived}, with a reactor
    turn after each, and then let held lines go.
    """
    for chunk in chunks:
        client.send(chunk)
    client.harness.settle()


def registry_problems(registry: Chat) -> list[str]:
    """
    Every way in which the chat's members and rooms disagree.
    """
    problems = []
    for key, member in registry.members.items():
        if not member.connected:
            problems.append(f"{member!r} is listed but not connected")
        if key != member.folded or key != names.fold(member.nick):
            problems.append(f"{member!r} is listed under {key!r}")
        for room_key, room in member.rooms.items():
            if registry.rooms.get(room_key) is not room:
                problems.append(f"{member!r} is in unlisted {room!r}")
            if member not in room.members:
                problems.append(f"{member!r} thinks it is in {room!r}")
    for key, room in registry.rooms.items():
        if not room.members:
            problems.append(f"{room!r} is listed but empty")
        if key != room.folded or key != names.fold(room.name):
            problems.append(f"{room!r} is listed under {key!r}")
        for member in room.members:
            if registry.members.get(member.folded) is not member:
                problems.append(f"{room!r} holds unlisted {member!r}")
            if member.rooms.get(room.folded) is not room:
                problems.append(f"{room!r} holds {member!r}, which is not in it")
            if member not in room.by_renderer.get(member.renderer, {}):
                problems.append(f"{room!r} does not render for {member!r}")
        if sum(map(len, room.by_renderer.values())) != len(room.members):
            problems.append(f"{room!r} renders for others than its members")
    return problems


# The catalogue


@dataclass(frozen=True)
class Case:
    """
    One hostile input.

    @ivar name: the test method is C{test_NAME}.
    @ivar chunks: what the attacker sends, one C{dataReceived} per chunk.
    @ivar observer: the exact lines the observer (in the attacker's room,
        the lobby unless C{setup} says otherwise) must receive. C{{a}}
        stands for the attacker's nickname when it sends C{chunks}.
    @ivar sender: the lines the attacker must receive, each exact or a
        pattern it must match in full; C{None} to leave them unchecked.
    @ivar setup: lines sent before, as C{(who, line)} with C{who} one of
        C{"attacker"} or C{"observer"}; what they cause is not checked.
    @ivar quits: whether the attacker's connection ends.
    @ivar doc: why the case matters.
    """

    name: str
    chunks: tuple[bytes, ...]
    observer: tuple[str, ...]
    sender: tuple[str | re.Pattern[str], ...] | None = ()
    setup: tuple[tuple[str, bytes], ...] = ()
    quits: bool = False
    doc: str = ""


def _said(*texts: str) -> tuple[str, ...]:
    return tuple(f"[lobby] <{{a}}> {text}" for text in texts)


def _case(
    name: str,
    data: bytes | tuple[bytes, ...],
    observer: tuple[str, ...],
    doc: str,
    **kwargs: object,
) -> Case:
    chunks = (data,) if isinstance(data, bytes) else data
    return Case(name, chunks, observer, doc=doc, **kwargs)  # type: ignore[arg-type]


IAC = b"\xff"
SE, SB, WILL, WONT, DO, DONT = b"\xf0", b"\xfa", b"\xfb", b"\xfc", b"\xfd", b"\xfe"

_INVALID_NICK = re.compile(r"!!! Invalid nickname: .+\.")
_INVALID_ROOM = re.compile(r"!!! Invalid room name: .+\.")
_ONLY_LETTERS = (
    "!!! Invalid nickname: A nickname may contain only letters, digits, '_' and '-'."
)

CASES: list[Case] = [
    # Encoding
    _case(
        "utf8TruncatedAtEndOfLine",
        b"caf\xc3\n",
        _said("caf\ufffd"),
        "The first byte of a two-byte character, then the newline.",
    ),
    _case(
        "utf8TruncatedAtEndOfInput",
        b"smile \xf0\x9f\x98",
        ("[lobby] <{a}> smile \ufffd", "[lobby] <-- {a} quit (connection closed)"),
        "Three bytes of a four-byte character and then end of input (sent "
        "by the harness after this chunk): the last line is still read.",
        sender=("*** Goodbye.",),
        quits=True,
    ),
    _case(
        "utf8TruncatedMidLine",
        b"a\xe2\x82 b \xc3c\n",
        _said("a\ufffd b \ufffdc"),
        "Truncated sequences followed by more text on the same line.",
    ),
    _case(
        "utf8SplitAcrossChunks",
        (b"caf\xc3", b"\xa9 ok\n"),
        _said("caf\u00e9 ok"),
        "A valid character cut between two reads is not mangled.",
    ),
    _case(
        "overlongSlashTwoBytes",
        b"\xc0\xafnick admin2\n",
        _said("\ufffd\ufffdnick admin2"),
        "An overlong '/' (C0 AF) is not a '/', so this is not a command.",
    ),
    _case(
        "overlongSlashThreeBytes",
        b"\xe0\x80\xafjoin x\n",
        _said("\ufffd\ufffd\ufffdjoin x"),
        "The three-byte overlong form of '/' (E0 80 AF).",
    ),
    _case(
        "overlongEscAndNewline",
        b"a\xc0\x9b[2Jb\xc0\x8ac\n",
        _said("a\ufffd\ufffd[2Jb\ufffd\ufffdc"),
        "Overlong ESC and LF decode to neither: no escape, no extra line.",
    ),
    _case(
        "utf8EncodedSurrogate",
        b"x\xed\xa0\x80y\n",
        _said("x\ufffd\ufffd\ufffdy"),
        "A UTF-16 surrogate (U+D800) encoded as UTF-8 is invalid.",
    ),
    _case(
        "aboveUnicodeRange",
        b"x\xf4\x90\x80\x80y\n",
        _said("x\ufffd\ufffd\ufffd\ufffdy"),
        "F4 90 80 80 would be U+110000, past the last code point.",
    ),
    _case(
        "loneContinuationBytes",
        b"\x80\xbfhi\xbf\n",
        _said("\ufffd\ufffdhi\ufffd"),
        "Continuation bytes with no lead byte.",
    ),
    _case(
        "latin1Text",
        b"caf\xe9 cr\xe8me\n",
        _said("caf\ufffd cr\ufffdme"),
        "A Latin-1 client: each non-ASCII byte is replaced.",
    ),
    # Bidirectional and invisible characters
    _case(
        "rtlOverrideInText",
        "invoice_\u202etxt.exe\n".encode(),
        _said("invoice_txt.exe"),
        "U+202E RIGHT-TO-LEFT OVERRIDE would show this as invoice_exe.txt.",
    ),
    _case(
        "bidiIsolatesAndEmbeddingsInText",
        "a\u2066b\u2067c\u2068d\u2069e\u202af\u202bg\u202ch\u202di\n".encode(),
        _said("abcdefghi"),
        "Every embedding, override and isolate character.",
    ),
    _case(
        "rtlOverrideInNick",
        "/nick evil\u202eabc\n".encode(),
        (),
        "docs/protocol.md: direction overrides in names are refused (not "
        "silently dropped, which would give the user a name it did not ask "
        "for).",
        sender=(_INVALID_NICK,),
    ),
    _case(
        "zeroWidthJoinerInNick",
        "/nick al\u200dice\n".encode(),
        (),
        "A zero-width joiner would make a second 'alice' look the same.",
        sender=(_ONLY_LETTERS,),
    ),
    _case(
        "zeroWidthSpaceInNick",
        "/nick ali\u200bce\n".encode(),
        (),
        "A zero-width space likewise.",
        sender=(_ONLY_LETTERS,),
    ),
    _case(
        "fullwidthNickCollides",
        "/nick \uff41\uff4c\uff49\uff43\uff45\n".encode(),
        (),
        "Full-width 'alice' is NFKC 'alice', which the observer holds.",
        sender=("!!! The nickname alice is taken.",),
        setup=(("observer", b"/nick alice\n"),),
    ),
    _case(
        "homoglyphNickAllowedButDistinct",
        "/nick \u0430lice\n".encode(),
        ("[lobby] --- {a} is now known as \u0430lice",),
        "KNOWN LIMITATION, not caught: Cyrillic U+0430 'a' with Latin "
        "'lice' is a different name from Latin 'alice' (NFKC and case "
        "folding do not map across scripts), so it is accepted while the "
        "observer holds 'alice'. Confusable (mixed-script) detection would "
        "be needed to refuse it.",
        sender=("*** You are now known as \u0430lice.",),
        setup=(("observer", b"/nick alice\n"),),
    ),
    _case(
        "lineSeparatorInText",
        "one\u2028two\u2029three\u0085four\n".encode(),
        _said("onetwothreefour"),
        "U+2028, U+2029 and NEL (U+0085) could break the line on a terminal.",
    ),
    _case(
        "emojiZwjKept",
        "\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f44d\U0001f3fd\n".encode(),
        _said("\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f44d\U0001f3fd"),
        "Not hostile: zero-width joiners inside emoji are text.",
    ),
    # Control characters
    _case(
        "carriageReturnMidLine",
        b"abc\rdef\n",
        _said("abcdef"),
        "A lone CR mid-line would return the cursor and overwrite.",
    ),
    _case(
        "fakeServerLineViaCarriageReturn",
        b"x\r*** You are now an admin\n",
        _said("x*** You are now an admin"),
        "The CR would make the line look like a server notice.",
    ),
    _case(
        "fakeServerLineViaBackspaces",
        b"\x08" * 30 + b"*** alice is now an operator\n",
        _said("*** alice is now an operator"),
        "Backspaces to wipe the '[lobby] <nick> ' prefix stay out.",
    ),
    _case(
        "nul",
        b"a\x00b\x00\n",
        _said("ab"),
        "NUL bytes.",
    ),
    _case(
        "delCharacters",
        b"\x7fa\x7fb\x7f\n",
        _said("ab"),
        "DEL (0x7F).",
    ),
    _case(
        "backspaceOverwrite",
        b"hi\x08\x08XX\n",
        _said("hiXX"),
        "'hi' overwritten with 'XX' on the reader's screen.",
    ),
    _case(
        "formFeedAndVerticalTab",
        b"a\x0cb\x0bc\n",
        _said("abc"),
        "Form feed and vertical tab move the cursor.",
    ),
    _case(
        "tabs",
        b"a\tb\t\tc\n",
        _said("a b  c"),
        "Each tab becomes one space.",
    ),
    _case(
        "bellStorm",
        b"ding" + b"\x07" * 100 + b"\n",
        _said("ding"),
        "A hundred bells.",
    ),
    _case(
        "blankAndWhitespaceLines",
        b"\n\r\n   \n\t\t\r\n \xc2\xa0 \r\n\r\r\n",
        (),
        "Empty lines, spaces, tabs and no-break spaces relay nothing.",
    ),
    _case(
        "onlyControlCharacters",
        b"\x00\x01\x07\x08\x1b\x7f\r\n\x1b[2J\x1b[H\n\xc2\x9b\xc2\x85\n",
        (),
        "Lines that are nothing once cleaned relay nothing.",
    ),
    # Over-long lines
    _case(
        "oneMegabyteWithoutNewline",
        (*(b"A" * 65536 for _ in range(16)), b"rest of it\nnext line\n"),
        _said("next line"),
        "1 MiB in 64 KiB reads with no newline: one error to the sender, the "
        "rest up to the newline dropped, the line after it delivered.",
        sender=(TOO_LONG,),
    ),
    _case(
        "oneMegabyteInOneChunk",
        b"B" * 2**20 + b"\nnext line\n",
        _said("next line"),
        "The same in a single read.",
        sender=(TOO_LONG,),
    ),
    _case(
        "tenLongLinesInterleaved",
        b"".join(
            f"line {i}\n".encode() + b"L" * (MAX_LINE + 1 + i) + b"\n"
            for i in range(10)
        )
        + b"last line\n",
        _said(*(f"line {i}" for i in range(10)), "last line"),
        "Ten over-long lines between normal ones in one read: ten errors, "
        "and every normal line, in order.",
        sender=(TOO_LONG,) * 10,
    ),
    _case(
        "longLineFullOfEscapes",
        b"\x1b[2J" * (MAX_LINE // 4 + 1) + b"\nafter\n",
        _said("after"),
        "Over the byte limit, even if it would clean down to nothing.",
        sender=(TOO_LONG,),
    ),
    # Telnet
    _case(
        "telnetNegotiation",
        b"".join(
            [
                IAC + WILL + b"\x18",
                IAC + DO + b"\x01",
                IAC + WONT + b"\x22",
                IAC + DONT + b"\x1f",
                b"hello\r\n",
            ]
        ),
        _said("hello"),
        "IAC WILL/DO/WONT/DONT option.",
    ),
    _case(
        "telnetNegotiationInEarlierRead",
        (IAC + WILL + b"\x18" + IAC + WILL + b"\x1f", b"hello\r\n"),
        _said("hello"),
        "A telnet client negotiates on connecting, before anything is typed.",
    ),
    _case(
        "telnetSubnegotiation",
        IAC + SB + b"\x18\x00xterm-256color" + IAC + SE + b"hi\r\n",
        _said("hi"),
        "IAC SB TERMINAL-TYPE IS xterm-256color IAC SE.",
    ),
    _case(
        "telnetWindowSizeWithNewlineByte",
        IAC + SB + b"\x1f\x00\x50\x00\x0a" + IAC + SE + b"hi\r\n",
        _said("hi"),
        "NAWS for a 10-row window holds a 0x0A byte inside the subnegotiation.",
    ),
    _case(
        "telnetIacIac",
        b"a" + IAC + IAC + b"b\r\n",
        _said("ab"),
        "IAC IAC (an escaped 255 byte).",
    ),
    _case(
        "telnetInterrupt",
        IAC + b"\xf4" + IAC + DO + b"\x06" + b"\r\n",
        (),
        "What telnet sends for ^C: IAC IP IAC DO TIMING-MARK. Nothing is left.",
    ),
    # Escape sequences
    _case(
        "osc52ClipboardWrite",
        b"\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2gK\x07look here\n",
        _said("look here"),
        "OSC 52 would write to the reader's clipboard.",
    ),
    _case(
        "oscTitleWithStTerminator",
        b"\x1b]0;pwned\x1b\\after\n",
        _said("after"),
        "OSC 0 (window title) ended by ESC backslash.",
    ),
    _case(
        "oscUnterminated",
        b"before\x1b]0;title to the end\n",
        _said("before"),
        "An OSC with no terminator takes the rest of the line.",
    ),
    _case(
        "oscHyperlink",
        b"\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\\n",
        _said("click"),
        "OSC 8 would hide the link target.",
    ),
    _case(
        "csiClearScreen",
        b"\x1b[2Jboo\n",
        _said("boo"),
        "ESC [2J clears the reader's screen.",
    ),
    _case(
        "csiCursorMovement",
        b"\x1b[Hx\x1b[10;20Hy\x1b[5A\n",
        _said("xy"),
        "Cursor home, position and up.",
    ),
    _case(
        "sgrColours",
        b"\x1b[1;31mred\x1b[0m \x1b[38;2;0;255;0mgreen\x1b[8mhidden\n",
        _said("red greenhidden"),
        "Colours, and 'concealed' text that would hide what follows.",
    ),
    _case(
        "eightBitCsi",
        b"\xc2\x9b2J\xc2\x9b31mred\n",
        _said("red"),
        "CSI as U+009B (UTF-8 C2 9B), which some terminals act on.",
    ),
    _case(
        "eightBitOsc",
        b"\xc2\x9d0;title\xc2\x9cafter\n",
        _said("after"),
        "OSC as U+009D and ST as U+009C.",
    ),
    _case(
        "escapeSplitAcrossReads",
        (b"x\x1b", b"[2", b"Jy\n"),
        _said("xy"),
        "An escape sequence cut between reads is still caught.",
    ),
    _case(
        "telnetHidingAnEscape",
        b"\x1b" + IAC + WILL + b"\x01[2Jx\n",
        _said("x"),
        "Telnet bytes inside an escape sequence do not hide it.",
    ),
    _case(
        "terminalReset",
        b"\x1bc\x1b(0lqqk\x1b#8\n",
        _said("lqqk"),
        "Full reset, line-drawing charset, screen fill: all two-char escapes.",
    ),
    # Commands
    _case(
        "quitMessageWithControls",
        b"/quit bye\x1b[2J\x07 \x1b]0;t\x07now\x00\n",
        ("[lobby] <-- {a} quit (bye now)",),
        "The quit reason is cleaned like any text.",
        sender=("*** Goodbye.",),
        quits=True,
    ),
    _case(
        "quitMessageOnlyControls",
        b"/quit \x1b[2J\x07\n",
        ("[lobby] <-- {a} quit (quit)",),
        "A quit reason that cleans to nothing is the default reason.",
        sender=("*** Goodbye.",),
        quits=True,
    ),
    _case(
        "joinRoomWithEscape",
        b"/join \x1b[31mred\n",
        (),
        "docs/protocol.md: control characters in room names are refused. "
        "The observer waits in 'red' and must not see the attacker join.",
        sender=(_INVALID_ROOM,),
        setup=(("observer", b"/join red\n"),),
    ),
    _case(
        "joinRoomWithControlCharacters",
        b"/join re\x07d\x00\n",
        (),
        "BEL and NUL in a room name: refused, as above.",
        sender=(_INVALID_ROOM,),
        setup=(("observer", b"/join red\n"),),
    ),
    _case(
        "msgWithEscapes",
        b"/msg watcher \x1b]0;pwned\x07hi \x1b[5mthere\x1b[0m\n",
        ("*{a}* hi there",),
        "A private message is cleaned for its recipient.",
        setup=(("observer", b"/nick watcher\n"),),
    ),
    _case(
        "meWithEscapes",
        b"/me \x1b[2Jwaves\x07\x1b[H\n",
        ("[lobby] * {a} waves",),
        "A /me action is cleaned.",
    ),
    _case(
        "reservedNickOtherCase",
        b"/nick SeRvEr\n",
        (),
        "Reserved names are refused in any case.",
        sender=("!!! Invalid nickname: SeRvEr is reserved.",),
    ),
    _case(
        "reservedNickFullwidth",
        "/nick \uff21\uff24\uff2d\uff29\uff2e\n".encode(),
        (),
        "Full-width ADMIN is NFKC ADMIN: reserved.",
        sender=("!!! Invalid nickname: ADMIN is reserved.",),
    ),
    _case(
        "nickTooLong",
        b"/nick " + b"n" * 25 + b"\n",
        (),
        "One character over the 24 allowed.",
        sender=("!!! Invalid nickname: A nickname must be at most 24 characters.",),
    ),
    _case(
        "doubleSlashThenEscape",
        b"//\x1b[2Jhello\n",
        _said("/hello"),
        "The // escape does not let an escape sequence through.",
    ),
]


class CatalogueTests(SynchronousTestCase):
    """
    One test per entry of L{CASES} (added below).
    """

    def check(self, case: Case) -> None:
        harness = hostile_harness(Limits())
        attacker = harness.connect()
        observer = harness.connect()
        who = {"attacker": attacker, "observer": observer}
        for name, line in case.setup:
            feed(who[name], line)
        discard(attacker, observer)

        nick = attacker.nick
        feed(attacker, *case.chunks)
        if case.quits and attacker.proto.member is not None:
            if attacker.proto.member.connected:
                # The input ended: as with 'nc -N'.
                attacker.proto.readConnectionLost()
                harness.settle()

        expected = [line.format(a=nick) for line in case.observer]
        self.assertEqual(observer.take(), expected)
        sent = attacker.take()
        if case.sender is not None:
            self.assertEqual(len(sent), len(case.sender), sent)
            for got, want in zip(sent, case.sender, strict=True):
                if isinstance(want, re.Pattern):
                    self.assertIsNotNone(want.fullmatch(got), f"{got!r} !~ {want}")
                else:
                    self.assertEqual(got, want)

        if case.quits:
            self.assertTrue(attacker.transport.disconnecting)
        else:
            # The connection is still open and reads normally.
            self.assertFalse(attacker.transport.disconnecting)
            feed(attacker, f"/msg {observer.nick} still here\n".encode())
            self.assertEqual(observer.take(), [f"*{attacker.nick}* still here"])
        self.assertFalse(observer.transport.disconnecting)
        self.assertEqual(registry_problems(harness.chat), [])
        for client in harness.connections:
            problem = terminal_safety_problem(client.everything())
            self.assertIsNone(problem, problem)

    def test_catalogue(self) -> None:
        """
        The catalogue is big enough, and every name is its own test.
        """
        self.assertGreaterEqual(len(CASES), 35)
        self.assertEqual(len({case.name for case in CASES}), len(CASES))
        for case in CASES:
            self.assertTrue(callable(getattr(self, f"test_{case.name}", None)))


def _test_for(case: Case) -> Callable[[CatalogueTests], None]:
    def test(self: CatalogueTests) -> None:
        self.check(case)

    test.__name__ = f"test_{case.name}"
    test.__qualname__ = f"CatalogueTests.test_{case.name}"
    test.__doc__ = case.doc
    return test


for _case_entry in CASES:
    setattr(CatalogueTests, f"test_{_case_entry.name}", _test_for(_case_entry))
del _case_entry


class InvariantTests(SynchronousTestCase):
    """
    The invariant checker itself must catch what it is for.
    """

    def test_acceptsSafeOutput(self) -> None:
        self.assertIsNone(terminal_safety_problem(b""))
        self.assertIsNone(
            terminal_safety_problem(
                "[lobby] <a> caf\u00e9 \ufffd\r\n*** x\r\n".encode()
            )
        )

    def test_catchesUnsafeOutput(self) -> None:
        for raw in [
            b"a\x1b[2J\r\n",
            b"a\x07\r\n",
            b"a\rb\r\n",
            b"a\nb\r\n",
            b"a\tb\r\n",
            b"a\x7f\r\n",
            b"a\x00\r\n",
            "a\u009b2J\r\n".encode(),
            "a\u0085\r\n".encode(),
            "a\u202e\r\n".encode(),
            "a\u2067\r\n".encode(),
            "a\u2028\r\n".encode(),
            b"a\xff\r\n",
            b"no line ending",
        ]:
            with self.subTest(raw=raw):
                self.assertIsNotNone(terminal_safety_problem(raw))

    def test_registryProblemsFound(self) -> None:
        harness = hostile_harness(Limits(flood_rate=0))
        client = harness.connect()
        harness.connect()
        self.assertEqual(registry_problems(harness.chat), [])
        member = client.proto.member
        assert member is not None
        member.connected = False
        self.assertNotEqual(registry_problems(harness.chat), [])
        member.connected = True
        member.rooms.clear()
        self.assertNotEqual(registry_problems(harness.chat), [])


# Arbitrary input

# Pieces of commands and of hostile sequences, mixed with random bytes, so
# that streams reach the commands and the sanitizer's corners often.
_FRAGMENTS = [
    b"/nick ",
    b"/join ",
    b"/part",
    b"/part ",
    b"/msg ",
    b"/me ",
    b"/quit",
    b"/quit ",
    b"/who",
    b"/rooms",
    b"/help ",
    b"//",
    b"/",
    b" ",
    b"\n",
    b"\r\n",
    b"\r",
    b"\t",
    b"alice",
    b"Alice",
    b"lobby",
    b"#red",
    b"red",
    b"guest1",
    b"guest2",
    b"guest3",
    b"server",
    "\uff41lice".encode(),
    "\u0430lice".encode(),
    b"\x1b",
    b"\x1b[",
    b"\x1b[2J",
    b"\x1b]",
    b"\x1b]52;c;",
    b"\x1b\\",
    b"\x07",
    b"\x00",
    b"\x7f",
    b"\x08",
    b"\xc2\x9b",
    b"\xc2\x9d",
    b"\xc2\x9c",
    b"\xc2\x85",
    "\u202e".encode(),
    "\u2066".encode(),
    "\u2028".encode(),
    "\u200d".encode(),
    b"\xff",
    IAC + WILL,
    IAC + SB,
    IAC + SE,
    IAC + IAC,
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
    b"\x80",
]

_COMMANDS = [
    b"/nick alice\n",
    b"/nick Server\n",
    b"/join red\n",
    b"/join #Red\n",
    b"/join blue\n",
    b"/part\n",
    b"/part red\n",
    b"/part lobby\n",
    b"/msg guest2 hello\n",
    b"/msg guest3 \x1b[2Jhi\n",
    b"/me waves\n",
    b"/who red\n",
    b"/rooms\n",
    b"hello\n",
    b"hello again\n",
    b"/quit bye\n",
]


# How a generated line begins: mostly plain chat, sometimes a command whose
# argument is the hostile part.
_LINE_STARTS = [b""] * 6 + [
    b"/nick ",
    b"/join ",
    b"/part ",
    b"/msg guest2 ",
    b"/msg guest3 ",
    b"/me ",
    b"/quit ",
    b"/who ",
    b"/help ",
    b"//",
]


@st.composite
def hostile_lines(draw: st.DrawFn, long_piece: int) -> bytes:
    """
    One line (or, with embedded newlines, several): a valid command, or a
    start from L{_LINE_STARTS} and a body of fragments and random bytes.
    """
    if draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(_COMMANDS))
    start = draw(st.sampled_from(_LINE_STARTS))
    body = draw(
        st.lists(
            st.one_of(
                st.sampled_from(_FRAGMENTS),
                st.binary(min_size=1, max_size=8),
                st.just(b"x" * long_piece),
            ),
            min_size=1,
            max_size=10,
        )
    )
    end = draw(st.sampled_from([b"\n", b"\r\n", b""]))
    return start + b"".join(body) + end


@st.composite
def hostile_streams(draw: st.DrawFn, long_piece: int) -> tuple[list[bytes], str]:
    """
    A byte stream from one client, cut into reads at arbitrary points, and
    how its connection ends.
    """
    prefix = draw(st.lists(st.sampled_from(_COMMANDS), max_size=4))
    lines = draw(st.lists(hostile_lines(long_piece), min_size=1, max_size=12))
    stream = b"".join(prefix + lines)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=10, unique=True)))
    chunks = [
        stream[i:j] for i, j in zip([0, *cuts], [*cuts, len(stream)], strict=True)
    ]
    ending = draw(st.sampled_from(["open", "half-close", "lost"]))
    return chunks, ending


class HostileStreamTests(SynchronousTestCase):
    """
    Whatever one client sends, nothing escapes, every client's output is
    terminal-safe, nobody else is disconnected and the registry stays
    consistent.
    """

    def run_stream(self, limits: Limits, chunks: list[bytes], ending: str) -> None:
        harness = hostile_harness(limits)
        attacker = harness.connect()
        watchers = [harness.connect(), harness.connect()]
        feed(watchers[1], b"/join red\n")
        for chunk in chunks:
            attacker.send(chunk)
            self.assertEqual(registry_problems(harness.chat), [])
        if ending == "half-close":
            attacker.proto.readConnectionLost()
        elif ending == "lost":
            attacker.proto.connectionLost(Failure(ConnectionDone()))
        # Release whatever the flood limiter holds.
        harness.settle(seconds=60)

        self.assertEqual(registry_problems(harness.chat), [])
        for client in harness.connections:
            problem = terminal_safety_problem(client.everything())
            self.assertIsNone(problem, problem)
        for watcher in watchers:
            member = watcher.proto.member
            assert member is not None
            self.assertTrue(member.connected)
            self.assertFalse(watcher.transport.disconnecting)
        # The watchers can still talk to each other.
        watchers[0].transport.clear()
        feed(watchers[1], f"/msg {watchers[0].nick} ping\n".encode())
        self.assertEqual(watchers[0].take(), [f"*{watchers[1].nick}* ping"])

    @settings(max_examples=300, deadline=None)
    @given(hostile_streams(long_piece=300))
    def test_noFloodControl(self, stream: tuple[list[bytes], str]) -> None:
        chunks, ending = stream
        self.run_stream(Limits(flood_rate=0, max_line=256), chunks, ending)

    @settings(max_examples=300, deadline=None)
    @given(hostile_streams(long_piece=MAX_LINE + 1))
    def test_defaultLimits(self, stream: tuple[list[bytes], str]) -> None:
        chunks, ending = stream
        self.run_stream(Limits(), chunks, ending)


# The plain-line shortcut


class GeneralPathOnly(LineProtocol):
    """
    The line protocol without its shortcut for plain lines.
    """

    def linesReceived(self, lines: list[bytes | None], start: int) -> int:
        return start


class ShortcutTests(SynchronousTestCase):
    """
    Plain lines skip the general decoding and the command parser; whatever
    the line, everyone sees exactly what the general path would show.
    """

    def outputs(
        self, factory_protocol: type[LineProtocol], lines: list[bytes]
    ) -> list[bytes]:
        harness = Harness(Limits(flood_rate=0, max_line=30))
        harness.factory.protocol = factory_protocol
        speaker, listener = harness.clients(2)
        speaker.send(b"".join(line + b"\n" for line in lines))
        return [speaker.everything(), listener.everything()]

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.binary(max_size=40),
                st.text(max_size=40).map(lambda t: t.encode("utf-8")),
                st.sampled_from(
                    [
                        b"\x1b[31m/nick bob",
                        b"a\x1b[2J",
                        b" x",
                        b"/me waves",
                        b"\xffhi",
                        b"/part",
                        b"/join lobby",
                        b"hello\r",
                        b"x" * 30 + b"\r",
                        b"x" * 31,
                    ]
                ),
            ).map(lambda b: b.replace(b"\n", b"")),
            max_size=8,
        )
    )
    def test_sameAsGeneralPath(self, lines: list[bytes]) -> None:
        self.assertEqual(
            self.outputs(LineProtocol, lines), self.outputs(GeneralPathOnly, lines)
        )
