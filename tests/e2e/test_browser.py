"""
The web client in a real browser (headless Chromium through Selenium)
against the installed C{twistd -n chat --web ...}, beside a raw socket user
of the line protocol, as C{nc} would be.

Each test polls the page's DOM for what it expects, with a deadline of a
few seconds a wait. The chat test saves a screenshot to
C{$TMPDIR/chatservice-browser/}; with C{WEB_CLIENT_SCREENSHOT=PATH} it
saves it there too (how C{docs/web-client.png} was made).

Without Chromium these tests are skipped, except in CI (C{CI=true}), where
they fail: C{.ci/run} installs Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.test_web import BlockingWebClient
from tests.support.browser import Page, find_browser, web_server
from tests.support.helpers import SocketClient, make_temp_dir

# The reconnect: the server's restart and the client's backoff (1 s, then
# 2 s, then 4 s, each give or take a fifth) are both in this wait.
RECONNECT_WAIT = 15.0


def screenshot_path(testcase: SynchronousTestCase) -> Path:
    return Path(tempfile.gettempdir()) / "chatservice-browser" / f"{testcase.id()}.png"


# Whether every flag of the room settings panel is disabled, and how many
# buttons it has to remove a ban or a mute.
_ALL_FLAGS_DISABLED = (
    "return [...document.querySelectorAll('#room-panel [data-setting]')]"
    ".every((box) => box.disabled)"
)
_REMOVE_BUTTONS = "return document.querySelectorAll('#room-panel .remove').length"


def panel_flags(page: Page) -> dict[str, bool]:
    """
    The flags the room settings panel shows, as the settings say them
    (its "outside messages" box shows C{no_external} turned over).
    """
    found = page.js(
        "return Object.fromEntries("
        "[...document.querySelectorAll('#room-panel [data-setting]')]"
        ".map((box) => [box.dataset.setting,"
        " box.dataset.inverse ? !box.checked : box.checked]))"
    )
    return {str(k): bool(v) for k, v in found.items()}


def field(page: Page, element_id: str) -> str:
    return str(
        page.js("return document.getElementById(arguments[0]).value", element_id)
    )


class BrowserTests(SynchronousTestCase):
    def setUp(self) -> None:
        find_browser()

    def test_twoPagesAndASocketUserChat(self) -> None:
        """
        Two pages and a line user in one room see each other's lines,
        actions, joins and members; a private message opens a tab of its
        own with an unread count.
        """
        server, port = web_server(self)
        url = f"http://127.0.0.1:{port}/"
        ann = Page(self, url)
        ann.choose_nick("ann")
        ann.join("lobby")
        bob = Page(self, url)
        bob.choose_nick("bob")
        bob.join("lobby")
        ann.wait_line("--> bob joined")
        assert server.tcp_port is not None
        nc = SocketClient(self, server.tcp_port)
        nc.welcome()
        nc.send(b"/nick cyd\r\n")
        nc.read_until(lambda line: b"cyd" in line)
        ann.wait_line(" is now known as cyd")
        bob.wait_line(" is now known as cyd")
        ann.wait(lambda: sorted(ann.members()) == ["@ann", "bob", "cyd"])

        ann.type("/topic Welcome to the lobby")
        bob.wait_line("--- ann set the topic: Welcome to the lobby")
        self.assertEqual(bob.text("topic"), "Welcome to the lobby")
        ann.type("hello from the browser")
        bob.wait_line("<ann> hello from the browser")
        nc.read_until(lambda line: line == b"[lobby] <ann> hello from the browser\r\n")
        bob.type("/me waves")
        ann.wait_line("* bob waves")
        nc.read_until(lambda line: line == b"[lobby] * bob waves\r\n")
        nc.send(b"hi both, from nc\r\n")
        ann.wait_line("<cyd> hi both, from nc")
        bob.wait_line("<cyd> hi both, from nc")

        nc.send(b"/msg bob a secret\r\n")
        bob.wait(
            lambda: (
                bob.js(
                    "const tab = document.querySelector('#privates .tab');"
                    "return tab && tab.textContent"
                )
                == "cyd1"
            )
        )
        bob.click_tab("private:cyd")
        bob.wait_line("<cyd> a secret")
        bob.type("only for you")
        nc.read_until(lambda line: line == b"*bob* only for you\r\n")

        ann.type("/nick annie")
        bob.click_tab("room:lobby")
        bob.wait_line("--- ann is now known as annie")
        ann.type("see you")
        nc.send(b"/quit bye\r\n")
        bob.wait_line("<-- cyd quit (bye)")
        bob.wait_line("<annie> see you")
        path = screenshot_path(self)
        bob.screenshot(path)
        self.assertTrue(path.stat().st_size > 0)
        if os.environ.get("WEB_CLIENT_SCREENSHOT"):
            shutil.copyfile(path, os.environ["WEB_CLIENT_SCREENSHOT"])

    def test_roomSettingsChangeLive(self) -> None:
        """
        A web user's room settings panel follows what an operator (another
        page, by its own panel and by slash commands) changes, as it
        happens: flags, key, limit, bans and mutes, a voice; a WebSocket
        program banned by nickname is put out. The watcher, no operator,
        may not change anything.
        """
        _, port = web_server(self)
        url = f"http://127.0.0.1:{port}/"
        olga = Page(self, url)
        olga.choose_nick("olga")
        olga.join("lobby")
        wendy = Page(self, url)
        wendy.choose_nick("wendy")
        wendy.join("lobby")
        olga.wait_line("--> wendy joined")
        # A program on the WebSocket, to be banned.
        bot = BlockingWebClient(port)
        self.addCleanup(bot.close)
        bot.send({"type": "nick", "nick": "nick"})
        bot.send({"type": "join", "room": "lobby"})
        wendy.wait_line("--> nick joined")

        wendy.click("settings")
        wendy.wait(lambda: wendy.text("panel-founder") == "Not registered")
        self.assertEqual(
            panel_flags(wendy),
            {
                "invite_only": False,
                "moderated": False,
                "secret": False,
                "topic_locked": True,
                "no_external": True,
            },
        )
        self.assertTrue(wendy.js(_ALL_FLAGS_DISABLED))
        wendy.wait(lambda: wendy.text("panel-bans") == "No bans.")

        olga.click("settings")
        olga.wait(lambda: olga.text("panel-founder") == "Not registered")
        self.assertFalse(olga.js(_ALL_FLAGS_DISABLED))
        olga.js(
            "document.querySelector('#room-panel [data-setting=moderated]').click()"
        )
        wendy.wait(lambda: panel_flags(wendy)["moderated"])
        wendy.wait_line(
            "--- olga made the room moderated: only operators and voices speak"
        )
        olga.type("/room set external on")
        wendy.wait(lambda: not panel_flags(wendy)["no_external"])
        olga.type("/room set key sesame")
        wendy.wait(lambda: field(wendy, "panel-key-value") == "sesame")
        olga.type("/room set limit 5")
        wendy.wait(lambda: field(wendy, "panel-limit-value") == "5")
        wendy.wait_line("--- olga limited the room to 5 members")

        olga.type("/ban nick 10m spam")
        wendy.wait_line("<-- nick was kicked by olga (spam)")
        bot.wait_for(type="kicked", nick="nick", reason="spam")
        wendy.wait(
            lambda: wendy.text("panel-bans").startswith("nick!*@* (by olga, until")
        )
        wendy.wait(lambda: "nick" not in wendy.members())
        olga.type("/mute $a:troll")
        wendy.wait(lambda: wendy.text("panel-mutes") == "$a:troll (by olga)")
        # The watcher has no remove buttons; the operator's lift the ban.
        self.assertEqual(wendy.js(_REMOVE_BUTTONS), 0)
        olga.wait(lambda: olga.js(_REMOVE_BUTTONS) == 2)
        olga.js("document.querySelector('#panel-bans .remove').click()")
        wendy.wait(lambda: wendy.text("panel-bans") == "No bans.")
        wendy.wait_line("--- olga lifted the ban on nick!*@*")

        olga.type("/voice wendy")
        wendy.wait(lambda: "+wendy" in wendy.members())
        wendy.type("/room set secret on")
        wendy.wait_line("You are not an operator of lobby.")
        self.assertFalse(panel_flags(wendy)["secret"])
        wendy.screenshot(screenshot_path(self))

    def test_registerReloadLogInAndSeeHistory(self) -> None:
        """
        A page registers its nickname and talks; reloaded, it remembers the
        name and the room, logs in again and sees what was said.
        """
        _, port = web_server(self)
        page = Page(self, f"http://127.0.0.1:{port}/")
        page.choose_nick("dana")
        page.click("me")
        page.fill("account-password", "correct horse")
        page.click("register")
        page.wait_line("Registered dana; you are logged in.")
        page.join("lobby")
        page.type("remember this")
        page.wait(lambda: page.js("return !document.querySelector('.line.pending')"))

        page.driver.refresh()
        page.wait_status("connected")
        # The registered name is not taken back without the password.
        page.wait(lambda: page.js("return !document.getElementById('account').hidden"))
        self.assertEqual(
            page.js("return document.getElementById('account-nick').value"), "dana"
        )
        self.assertNotEqual(page.text("me"), "dana")
        page.fill("account-password", "correct horse")
        page.click("login")
        page.wait(lambda: page.text("me") == "dana")
        page.wait(lambda: page.text("title") == "lobby")
        page.wait_line("<dana> remember this")
        self.assertEqual(
            page.js("return document.querySelector('.line.history').textContent"),
            page.wait_line("<dana> remember this"),
        )

        # On a phone-sized screen the conversations are a drawer.
        page.driver.set_window_size(390, 844)
        shown = "return getComputedStyle(document.getElementById('side')).display"
        page.wait(lambda: page.js(shown) == "none")
        page.click("menu")
        page.wait(lambda: page.js(shown) == "block")
        page.click_tab("room:lobby")
        page.wait(lambda: page.js(shown) == "none")

    def at_beginning(self, page: Page) -> bool:
        return any(line.endswith("Beginning of history.") for line in page.lines())

    def test_scrollingUpLoadsOlderHistory(self) -> None:
        """
        Scrolled to the top, the scrollback loads the page before, from
        memory and then from the database, without moving the lines in
        view, until it shows the beginning of the history.
        """
        server, port = web_server(
            self, options=("--database", ":memory:", "--flood-rate", "0")
        )
        assert server.tcp_port is not None
        nc = SocketClient(self, server.tcp_port)
        nc.welcome()
        nc.send(b"/nick nora\r\n")
        nc.read_until(lambda line: b"nora" in line)
        # More than the 500 lines kept in memory, so that the oldest come
        # from the database.
        count = 620
        nc.send(b"".join(b"older line %d\r\n" % i for i in range(count)))
        nc.send(b"/history 1\r\n")
        nc.read_until(lambda line: line.endswith(b"older line %d\r\n" % (count - 1)))
        page = Page(self, f"http://127.0.0.1:{port}/")
        page.choose_nick("gus")
        page.join("lobby")
        page.wait_line(f"<nora> older line {count - 1}")
        oldest_shown = (
            "const lines = document.querySelectorAll("
            "'.log:not([hidden]) .line.said');"
            "return lines[0] && lines[0].textContent"
        )
        top = (
            "const log = document.querySelector('.log:not([hidden])');"
            "const line = [...log.querySelectorAll('.line')]"
            "  .find((p) => p.textContent.endsWith(arguments[0]));"
            "return line.getBoundingClientRect().top - log.getBoundingClientRect().top"
        )
        scroll_up = (
            "const log = document.querySelector('.log:not([hidden])');"
            "log.scrollTop = 0; log.dispatchEvent(new Event('scroll'));"
        )
        first = str(page.js(oldest_shown)).partition("<nora> ")[2]
        page.js(scroll_up)
        was = page.js(top, first)
        page.wait(lambda: not str(page.js(oldest_shown)).endswith(first))
        # The line that was at the top is where it was: the page went above.
        self.assertLess(abs(page.js(top, first) - was), 2)
        for _ in range(40):
            if self.at_beginning(page):
                break
            before = page.js(oldest_shown)
            page.js(scroll_up)
            page.wait(
                lambda before=before: (
                    page.js(oldest_shown) != before or self.at_beginning(page)
                )
            )
        lines = page.lines()
        self.assertTrue(lines[0].endswith("Beginning of history."), lines[:3])
        said = [line.partition("<nora> ")[2] for line in lines if "<nora> " in line]
        self.assertEqual(said, [f"older line {i}" for i in range(count)])

    def test_hostileTextIsOnlyText(self) -> None:
        """
        Markup and terminal escapes from another user, or typed, show as
        text: no element is made from them and no script runs.
        """
        server, port = web_server(self)
        page = Page(self, f"http://127.0.0.1:{port}/")
        page.choose_nick("eve")
        page.join("lobby")
        page.js("window.__alerts = 0; window.alert = () => { window.__alerts += 1; };")
        assert server.tcp_port is not None
        nc = SocketClient(self, server.tcp_port)
        nc.welcome()
        hostile = "<img src=x onerror=alert(1)>"
        nc.send(
            hostile.encode() + b"\x1b[2J\x1b]0;owned\x07<script>alert(2)</script>\r\n"
        )
        shown = page.wait_line("<script>alert(2)</script>")
        self.assertIn(hostile, shown)
        self.assertNotIn("\x1b", shown)
        page.type('<b onmouseover="alert(3)">bold?</b><svg onload=alert(4)>')
        page.wait_line('<b onmouseover="alert(3)">bold?</b><svg onload=alert(4)>')
        # Each line is a time and two spans of text, whatever its text.
        self.assertEqual(
            page.js(
                "return [...document.querySelectorAll('.line')]"
                ".filter((p) => p.textContent.includes('alert('))"
                ".map((p) => p.querySelectorAll('*').length)"
            ),
            [3, 3],
        )
        self.assertEqual(page.js("return window.__alerts"), 0)
        from selenium.common.exceptions import NoAlertPresentException

        with self.assertRaises(NoAlertPresentException):
            page.driver.switch_to.alert.text  # noqa: B018

    def test_reconnectsAfterRestart(self) -> None:
        """
        When the server restarts, the page says so, reconnects by itself
        with its name and rooms, and sends what was typed while offline.
        """
        database = make_temp_dir(self) / "chat.sqlite"
        options = ("--database", str(database))
        server, port = web_server(self, options=options)
        page = Page(self, f"http://127.0.0.1:{port}/")
        page.choose_nick("finn")
        page.join("lobby")
        page.type("before the restart")
        page.wait(lambda: page.js("return !document.querySelector('.line.pending')"))

        server.stop()
        page.wait_status("offline")
        page.wait_line("Disconnected from the server; reconnecting…")
        page.type("typed while offline")
        page.wait(lambda: page.js("return !!document.querySelector('.line.held')"))

        server, _ = web_server(
            self, web=f"tcp:{port}:interface=127.0.0.1", options=options
        )
        assert server.tcp_port is not None
        nc = SocketClient(self, server.tcp_port)
        nc.welcome()
        page.wait_status("connected", RECONNECT_WAIT)
        page.wait_line("Reconnected; sending 1 held line(s).")
        self.assertEqual(page.text("me"), "finn")
        nc.read_until(lambda line: line == b"[lobby] <finn> typed while offline\r\n")
        page.wait(lambda: page.js("return !document.querySelector('.line.pending')"))
        # The history replayed on entering again is not shown twice.
        self.assertEqual(
            [line for line in page.lines() if line.endswith("before the restart")],
            [page.lines()[1]],
        )
