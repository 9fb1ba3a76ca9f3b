"""
A real IRC client in a room with a line user: Debian's C{ii}, file based and
so easy to script, against the installed C{twistd -n chat}, beside a raw
socket user of the line protocol (as C{nc} would be).

ii writes what it receives to an C{out} file per server, channel and query,
and takes what to send from a FIFO C{in} beside each. Its standard output
echoes every line it gets from the server, which is when its files change,
so the tests wait on that pipe (with a deadline) and read the files after
each chunk, rather than sleep.

Without ii these tests are skipped, except in CI (C{CI=true}), where they
fail: C{.ci/run} installs ii when it is missing.
"""

from __future__ import annotations

import errno
import os
import re
import select
import shutil
import subprocess
import time
import unittest

from twisted.trial.unittest import SynchronousTestCase

from tests.support.helpers import (
    TIMEOUT,
    SocketClient,
    irc_server,
    make_temp_dir,
    stop_process,
)


def find_ii() -> str:
    """
    The path of C{ii}; without it, skip the test, or fail it in CI.
    """
    path = shutil.which("ii")
    if path is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("ii is not installed: .ci/run installs it")
        raise unittest.SkipTest("ii is not installed (Debian's package ii)")
    return path


class II:
    """
    C{ii} connected as C{nick} to 127.0.0.1:C{port}, in a temporary
    directory, stopped in the test's cleanup.

    @ivar server: ii's directory for the server, where its server-wide
        C{in} and C{out} are and where it makes one folder per channel
        and per query.
    """

    def __init__(self, testcase: SynchronousTestCase, port: int, nick: str) -> None:
        self.testcase = testcase
        root = make_temp_dir(testcase)
        self.server = root / "127.0.0.1"
        self.process = subprocess.Popen(
            [
                find_ii(),
                "-s",
                "127.0.0.1",
                "-p",
                str(port),
                "-n",
                nick,
                "-i",
                str(root),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        testcase.addCleanup(stop_process, self.process)
        self.echoed = b""

    def _read(self, deadline: float) -> None:
        """
        Wait for ii to echo more of what the server sends, at most until
        C{deadline}, and by a tenth of a second at a time, as ii may write
        its files just after its echo.
        """
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        wait = min(0.1, max(0.0, deadline - time.monotonic()))
        readable, _, _ = select.select([fd], [], [], wait)
        if readable:
            chunk = os.read(fd, 65536)
            if not chunk:
                self.testcase.fail(f"ii exited; it had received {self.echoed!r}")
            self.echoed += chunk

    def registered(self) -> None:
        """
        Wait until ii has received the end of the MOTD (C{376}, or C{422}
        for none), which ends registration: what it sends from then on is
        taken as a registered client's.
        """
        deadline = time.monotonic() + TIMEOUT
        while not re.search(rb" (376|422) ", self.echoed):
            if time.monotonic() > deadline:
                self.testcase.fail(f"ii was not registered: {self.echoed!r}")
            self._read(deadline)

    def lines(self, where: str = "") -> list[str]:
        """
        What ii has written to the C{out} file of C{where} (a channel or a
        nickname; the server's own when empty), without its timestamps.
        """
        try:
            text = (self.server / where / "out").read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [line.partition(" ")[2] for line in text.splitlines()]

    def wait_for(self, line: str, where: str = "") -> None:
        """
        Wait until ii shows C{line} in the C{out} file of C{where}.
        """
        deadline = time.monotonic() + TIMEOUT
        while line not in self.lines(where):
            if time.monotonic() > deadline:
                self.testcase.fail(
                    f"ii did not show {line!r} in {where or 'the server'}: "
                    f"{self.lines(where)!r}; it received {self.echoed!r}"
                )
            self._read(deadline)

    def send(self, line: str, where: str = "") -> None:
        """
        Write C{line} to the C{in} FIFO of C{where}, as a user of ii would
        with echo: a channel or a query's text, or a command such as
        C{/j #lobby} for the server's.
        """
        path = self.server / where / "in"
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                # ii has not made the FIFO, or not opened it yet.
                if e.errno not in (errno.ENOENT, errno.ENXIO):
                    raise
            if time.monotonic() > deadline:
                self.testcase.fail(f"ii did not open {path}")
            self._read(deadline)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)


class IIAndLineUserTests(SynchronousTestCase):
    def setUp(self) -> None:
        find_ii()
        server, irc_port = irc_server(self)
        assert server.tcp_port is not None
        self.ii = II(self, irc_port, "alice")
        self.ii.registered()
        self.ii.send("/j #lobby")
        self.ii.wait_for("-!- alice(alice@chatservice) has joined #lobby", "#lobby")
        self.line = SocketClient(self, server.tcp_port)
        self.line.welcome()
        self.line.send(b"/nick bob\r\n")
        self.line.read_until(lambda got: b"known as bob" in got)

    def line_shows(self, expected: bytes) -> None:
        """
        Skip the line user's lines up to C{expected}.
        """
        self.assertEqual(self.line.read_until(lambda got: got == expected), expected)

    def test_chatInOneRoom(self) -> None:
        """
        Lines, C{/me} (CTCP ACTION, which ii shows as it comes) and private
        messages reach each side, both ways.
        """
        self.line.send(b"hello from nc\r\n/me waves\r\n/msg alice psst\r\n")
        self.ii.wait_for("<bob> hello from nc", "#lobby")
        self.ii.wait_for("<bob> \x01ACTION waves\x01", "#lobby")
        self.ii.wait_for("<bob> psst", "bob")
        self.ii.send("hi bob", "#lobby")
        self.line_shows(b"[lobby] <alice> hi bob\r\n")
        self.ii.send("\x01ACTION dances\x01", "#lobby")
        self.line_shows(b"[lobby] * alice dances\r\n")
        self.ii.send("/j bob back at you")
        self.line_shows(b"*alice* back at you\r\n")

    def test_nickChangesSeenByBoth(self) -> None:
        """
        A nick change on either side is shown on the other, and ii shows its
        own.
        """
        self.line.send(b"/nick bobby\r\n")
        self.ii.wait_for("-!- bob changed nick to bobby")
        self.ii.send("/n alicia")
        self.line_shows(b"[lobby] --- alice is now known as alicia\r\n")
        self.ii.wait_for('-!- changed nick to "alicia"')
